"""The rule table: one small function per indicator code in the knowledge base's scoring.

A rule reads the facts and returns a :class:`Firing` (with the level that selects its points,
the evidence, and the sources specific to this case) or ``None``. Weights are not here: they
live in ``scoring.yaml`` beside each rule's published explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine.facts import Evidence, Facts
from app.engine.inputs import RefugeeStatusValue
from app.kb.loader import KnowledgeBase
from app.kb.schema import Level

PROTECTED = {
    RefugeeStatusValue.RECOGNISED: "recognised",
    RefugeeStatusValue.ASYLUM_PENDING: "asylum_pending",
    RefugeeStatusValue.ASYLUM_REJECTED: "asylum_rejected",
}


@dataclass(frozen=True, slots=True)
class Firing:
    evidence: list[Evidence]
    level: str | None = None
    source_ids: list[str] = field(default_factory=list)


Rule = Callable[[Facts, KnowledgeBase], Firing | None]


def _ev(field_name: str, text: str, entry: str) -> Evidence:
    return Evidence(field=field_name, matched_text=text, knowledge_base_entry=entry)


def _country_ev(f: Facts) -> Evidence:
    return _ev("notice.issuing_country", f.issuing_country or "", f"country:{f.country.iso2}")


def _categories(f: Facts, kb: KnowledgeBase, flag: str) -> list[Evidence]:
    return [
        ev
        for cat, evs in f.categories.items()
        if getattr(kb.offence_categories[cat], flag)
        for ev in evs
    ]


def _of(f: Facts, *categories: str) -> list[Evidence]:
    return [ev for c in categories for ev in f.categories.get(c, [])]


def _profile(f: Facts, kb: KnowledgeBase) -> list[Evidence]:
    counted = set(kb.scoring.dissident_profile_tags)
    return [ev for tag, evs in f.tags.items() if tag in counted for ev in evs]


def _targeted_groups(f: Facts, kb: KnowledgeBase) -> dict[str, list[Evidence]]:
    if f.issuing_country is None:
        return {}
    return {
        g: evs
        for g, evs in f.groups.items()
        if g in f.country.targeted_groups or f.issuing_country in kb.groups[g].countries
    }


def requesting_state_pattern(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """The issuing state has a profile of documented misuse; points by documentation level."""
    if not f.documented_state or f.country.documentation_level is Level.NONE:
        return None
    sources = [s for finding in f.country.findings[:3] for s in finding.source_ids]
    return Firing([_country_ev(f)], f.country.documentation_level.value, sources)


def no_documented_state_pattern(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """The issuing state is known and has no profile in the knowledge base."""
    if f.issuing_country is None or f.documented_state:
        return None
    return Firing([_ev("notice.issuing_country", f.issuing_country, "country:ZZ")])


def charge_political_offence(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A charge of political character: political, expression or religion categories."""
    evidence = _of(f, "political", "expression", "religion")
    return Firing(evidence) if evidence else None


def military_offence(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A purely military offence (desertion, draft evasion)."""
    evidence = _of(f, "military")
    return Firing(evidence) if evidence else None


def charge_rpd_excluded_category(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A category RPD Article 83 excludes (private dispute, administrative, family, norms)."""
    evidence = _categories(f, kb, "rpd_excluded")
    return Firing(evidence) if evidence else None


def _violence(f: Facts) -> list[Evidence]:
    return [
        ev
        for cue in ("victim_detail", "weapon_detail")
        for ev in f.charge_cues.get(cue, []) + f.cues.get(cue, [])
    ]


def charge_vague_extremism_terrorism(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Terrorism or extremism charged with no concrete violent act, weapon or victim named."""
    evidence = _of(f, "terrorism", "extremism")
    # A charge that names a movement or group ("membership of Hizb ut-Tahrir", "FETÖ") is a
    # membership charge, whatever category its words fall in.
    evidence += [ev for evs in f.groups.values() for ev in evs if ev.field == "notice.charges"]
    if not evidence or _violence(f) or _of(f, "violent", "sexual"):
        return None
    return Firing(evidence)


def charge_economic_against_critic(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Fraud, tax or corruption charges against someone with a critic's or opponent's profile."""
    economic = _of(f, "fraud_economic", "corruption")
    profile = _profile(f, kb) + [ev for evs in _targeted_groups(f, kb).values() for ev in evs]
    if not economic or not profile:
        return None
    return Firing(economic + profile[:2])


def provision_political_use(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A cited provision is documented (or reported) as used against critics or minorities."""
    # A fraud or embezzlement article is "used politically" only against someone with a
    # critic's profile; against anyone else it is an ordinary charge.
    profiled = bool(_profile(f, kb) or _targeted_groups(f, kb))
    provisions = [
        p
        for p in f.provisions
        if profiled or not kb.offence_categories[kb.provisions[p].category].ordinary_crime
    ]
    if not provisions:
        return None
    uses = {kb.provisions[p].political_use.value for p in provisions}
    level = "documented" if "documented" in uses else "reported"
    evidence = [ev for p in provisions for ev in f.provisions[p]]
    sources = [s for p in provisions for s in kb.provisions[p].source_ids]
    return Firing(evidence, level, sources)


def profile_dissident(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A journalist, rights defender, opposition figure, activist or similar profile."""
    evidence = _profile(f, kb)
    if not evidence:
        return None
    tags = {ev.knowledge_base_entry.split(":", 1)[1] for ev in evidence}
    sources = [
        s for t in sorted(tags) if t in kb.profile_tags for s in kb.profile_tags[t].source_ids
    ]
    return Firing(evidence, None, sources)


def targeted_group_membership(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Membership of a group the requesting state is documented as targeting."""
    groups = _targeted_groups(f, kb)
    if not groups:
        return None
    evidence = [ev for evs in groups.values() for ev in evs]
    sources = [s for g in sorted(groups) for s in kb.groups[g].source_ids]
    return Firing(evidence, None, sources)


def _refugee_level(f: Facts) -> str | None:
    """The protection level held or sought against the requesting state, if any."""
    status = f.subject.refugee_status
    if status is None or status.status not in PROTECTED or f.issuing_country is None:
        return None
    if status.granted_by == f.issuing_country:
        return None  # protection granted by the requesting state itself says nothing here
    return PROTECTED[status.status]


def refugee_from_requesting_state(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Refugee or asylum status held or sought against the requesting state."""
    level = _refugee_level(f)
    if level is None:
        return None
    ev = _ev("subject.refugee_status.status", level, f"refugee_status:{level}")
    return Firing([ev], level)


def torture_risk_on_return(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Documented torture or ill-treatment of detainees or returnees in the requesting state."""
    risk = f.country.torture_risk
    if not f.documented_state or risk.level is Level.NONE:
        return None
    ev = _ev(
        "notice.issuing_country", f.issuing_country or "", f"country:{f.country.iso2}.torture_risk"
    )
    return Firing([ev], risk.level.value, list(risk.source_ids))


def timing_after_exit_or_criticism(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """The notice followed departure, an asylum claim or public criticism."""
    evidence = list(f.cues.get("timing", []))
    left, issued = f.subject.left_requesting_country_year, f.issued_year
    # Every fugitive leaves before the notice: departure only counts where something else
    # about the case or the person is political.
    political = bool(
        _profile(f, kb)
        or _targeted_groups(f, kb)
        or _of(f, "political", "expression", "religion", "terrorism", "extremism")
    )
    if political and left is not None and issued is not None and issued >= left:
        evidence.insert(
            0, _ev("notice.issued_date", str(issued), f"left_requesting_country_year:{left}")
        )
    status = f.subject.refugee_status
    if (
        status is not None
        and status.year is not None
        and issued is not None
        and issued >= status.year
        and status.status in PROTECTED
    ):
        evidence.append(
            _ev("notice.issued_date", str(issued), f"refugee_status.year:{status.year}")
        )
    return Firing(evidence) if evidence else None


def conviction_in_absentia(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """The warrant rests on a conviction in absentia."""
    evidence = f.cues.get("in_absentia", []) + f.charge_cues.get("in_absentia", [])
    if f.notice.conviction_in_absentia:
        evidence = [
            _ev("notice.conviction_in_absentia", "true", "notice:conviction_in_absentia"),
            *evidence,
        ]
    return Firing(evidence) if evidence else None


def diffusion_unreviewed(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A diffusion rather than a Red Notice reviewed before publication."""
    if not f.is_diffusion:
        return None
    return Firing([_ev("notice.type", "diffusion", "notice_type:diffusion")])


def repeat_request_after_deletion(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """An earlier notice was refused or deleted, or extradition refused, and the state asked
    again."""
    evidence = f.cues.get("prior_refusal", [])
    return Firing(evidence) if evidence else None


def family_pressure(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Relatives at home questioned, detained or threatened."""
    evidence = f.cues.get("family_pressure", [])
    return Firing(evidence) if evidence else None


def violent_or_sexual_crime_with_victims(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Counter: the charge is a violent or sexual crime, or names victims, deaths or injuries."""
    evidence = _of(f, "violent", "sexual") + f.charge_cues.get("victim_detail", [])
    if not evidence:
        return None  # weapon or explosive words alone name no victim
    return Firing(evidence + f.charge_cues.get("weapon_detail", []))


def ordinary_crime_without_profile(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Counter: an ordinary-law charge, and nothing political about the charge or the person."""
    ordinary = _categories(f, kb, "ordinary_crime")
    if not ordinary:
        return None
    political = (
        _categories(f, kb, "political_character")
        or _of(f, "terrorism", "extremism")
        or _categories(f, kb, "rpd_excluded")
        or _profile(f, kb)
        or _targeted_groups(f, kb)
        or _protected(f)
        or provision_political_use(f, kb)
    )
    return None if political else Firing(ordinary)


def _protected(f: Facts) -> bool:
    """Recognised refugee or pending asylum claim against the requesting state."""
    return _refugee_level(f) in ("recognised", "asylum_pending")


RULES: dict[str, Rule] = {
    "requesting_state_pattern": requesting_state_pattern,
    "charge_political_offence": charge_political_offence,
    "charge_vague_extremism_terrorism": charge_vague_extremism_terrorism,
    "charge_economic_against_critic": charge_economic_against_critic,
    "charge_rpd_excluded_category": charge_rpd_excluded_category,
    "provision_political_use": provision_political_use,
    "profile_dissident": profile_dissident,
    "targeted_group_membership": targeted_group_membership,
    "refugee_from_requesting_state": refugee_from_requesting_state,
    "torture_risk_on_return": torture_risk_on_return,
    "timing_after_exit_or_criticism": timing_after_exit_or_criticism,
    "conviction_in_absentia": conviction_in_absentia,
    "diffusion_unreviewed": diffusion_unreviewed,
    "repeat_request_after_deletion": repeat_request_after_deletion,
    "family_pressure": family_pressure,
    "military_offence": military_offence,
    "violent_or_sexual_crime_with_victims": violent_or_sexual_crime_with_victims,
    "no_documented_state_pattern": no_documented_state_pattern,
    "ordinary_crime_without_profile": ordinary_crime_without_profile,
}
