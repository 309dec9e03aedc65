"""The rule table: one small function per indicator code in the knowledge base's scoring.

A rule reads the facts and returns a :class:`Firing` (with the level that selects its points,
the evidence, and the sources specific to this case) or ``None``. Weights are not here: they
live in ``scoring.yaml`` beside each rule's published explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from app.engine.facts import Evidence, Facts
from app.engine.inputs import RefugeeStatusValue
from app.kb.loader import KnowledgeBase
from app.kb.schema import FreedomStatus, IndicatorKind, IndicatorSpec, Level, Stance

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


def run(code: str, f: Facts, kb: KnowledgeBase) -> Firing | None:
    """The rule ``code`` on these facts, computed once per screening (rules that read other
    rules, and the engine, share the result)."""
    if code not in f.fired:
        f.fired[code] = RULES[code](f, kb)
    return cast("Firing | None", f.fired[code])


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


def _exposure(f: Facts, kb: KnowledgeBase, stance: Stance) -> list[Evidence]:
    """Political roles in prose of one stance (office, opposition, change of power)."""
    roles = kb.exposure_roles
    return [ev for role, evs in f.exposure.items() if roles[role].stance is stance for ev in evs]


def _opponent(f: Facts, kb: KnowledgeBase) -> list[Evidence]:
    """What makes the person an opponent of the requesting state's leadership: a critic's
    profile, an opposition role, the losing side of a change of power, membership of a
    targeted group. A post held is not enough: former officials are also genuinely wanted."""
    return (
        _profile(f, kb)
        + _exposure(f, kb, Stance.OPPOSITION)
        + _exposure(f, kb, Stance.CHANGE_OF_POWER)
        + [ev for evs in _targeted_groups(f, kb).values() for ev in evs]
    )


def _political_person(f: Facts, kb: KnowledgeBase) -> list[Evidence]:
    """An opponent, or a current or former official."""
    return _opponent(f, kb) + _exposure(f, kb, Stance.OFFICE)


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


def _cue(f: Facts, cue: str) -> list[Evidence]:
    """A cue's matches in the narrative, then in the charge text."""
    return f.cues.get(cue, []) + f.charge_cues.get(cue, [])


def charge_vague_extremism_terrorism(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Terrorism or extremism charged with no concrete violent act, weapon or victim named."""
    evidence = _of(f, "terrorism", "extremism")
    # A charge that names a movement or group ("membership of Hizb ut-Tahrir", "FETÖ") is a
    # membership charge, whatever category its words fall in.
    evidence += [ev for evs in f.groups.values() for ev in evs if ev.field == "notice.charges"]
    if not evidence or _violence(f) or _of(f, "violent", "sexual", "property_damage"):
        return None
    return Firing(evidence)


def charge_economic_against_critic(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Fraud, tax or corruption charges against someone with a critic's or opponent's profile."""
    economic = _of(f, "fraud_economic", "corruption")
    profile = _opponent(f, kb)
    if not economic or not profile:
        return None
    return Firing(economic + profile[:2])


def provision_political_use(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A cited provision is documented (or reported) as used against critics or minorities."""
    # A fraud or embezzlement article is "used politically" only against someone with a
    # critic's profile; against anyone else it is an ordinary charge.
    profiled = bool(_political_person(f, kb))
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


def refugee_level(f: Facts) -> str | None:
    """The protection level held or sought against the requesting state, if any."""
    status = f.subject.refugee_status
    if status is None or status.status not in PROTECTED or f.issuing_country is None:
        return None
    if status.granted_by == f.issuing_country:
        return None  # protection granted by the requesting state itself says nothing here
    if status.persecution_country not in (None, f.issuing_country):
        return None  # the person fled another state: not protection against this one
    return PROTECTED[status.status]


def refugee_from_requesting_state(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Refugee or asylum status held or sought against the requesting state."""
    level = refugee_level(f)
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
        _opponent(f, kb)
        or _of(f, "political", "assembly", "expression", "religion", "terrorism", "extremism")
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
    evidence = _cue(f, "in_absentia")
    if f.notice.conviction_in_absentia:
        evidence = [
            _ev("notice.conviction_in_absentia", "true", "notice:conviction_in_absentia"),
            *evidence,
        ]
    return Firing(evidence) if evidence else None


def diffusion_unreviewed(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A diffusion rather than a Red Notice reviewed before publication; not one sent after
    INTERPOL began reviewing the requesting state's diffusions before circulation."""
    if not f.is_diffusion:
        return None
    _, reviewed = f.prior_review()
    if reviewed:
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


def _protected(f: Facts) -> bool:
    """Recognised refugee or pending asylum claim against the requesting state."""
    return refugee_level(f) in ("recognised", "asylum_pending")


def state_baseline(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A state without a detailed profile that global indices rate not free or partly free,
    or name as an origin of transnational repression."""
    b = f.baseline
    if f.documented_state or b is None:
        return None
    rating = b.freedom_in_the_world
    listed = b.transnational_repression is not None and b.transnational_repression.origin_state
    status = rating.status if rating is not None else None
    level = (
        {
            FreedomStatus.NOT_FREE: "not_free",
            FreedomStatus.PARTLY_FREE: "partly_free",
            FreedomStatus.FREE: "free",
        }.get(status)
        if status is not None
        else None
    )
    if level is None and not listed:
        return None
    if listed:
        level = f"{level}_listed" if level else "partly_free_listed"
    evidence, sources = [], []
    if rating is not None:
        evidence.append(
            _ev(
                "notice.issuing_country",
                f.issuing_country or "",
                f"baseline:{b.iso2}.freedom_in_the_world:{rating.status.value}:{rating.score}",
            )
        )
        sources.append(rating.source_id)
    if listed and b.transnational_repression is not None:
        evidence.append(
            _ev(
                "notice.issuing_country",
                f.issuing_country or "",
                f"baseline:{b.iso2}.transnational_repression",
            )
        )
        sources.append(b.transnational_repression.source_id)
    return Firing(evidence, level, sources)


def _state_context(f: Facts) -> str:
    """How repressive the requesting state's record is, for weighing a political role."""
    if f.documented_state and f.country.documentation_level in (Level.STRONG, Level.MODERATE):
        return "repressive"
    rating = f.baseline.freedom_in_the_world if f.baseline is not None else None
    if rating is None:
        return "repressive" if f.documented_state else "unknown"
    return {
        FreedomStatus.NOT_FREE: "repressive",
        FreedomStatus.PARTLY_FREE: "partly_free",
        FreedomStatus.FREE: "free",
    }[rating.status]


def _roles(evidence: list[Evidence], kb: KnowledgeBase, level: str | None) -> Firing | None:
    if not evidence:
        return None
    roles = sorted({ev.knowledge_base_entry.split(":", 1)[1] for ev in evidence})
    return Firing(evidence, level, [s for r in roles for s in kb.exposure_roles[r].source_ids])


def political_exposure(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A current or former head of state or government, minister, legislator, party or
    regional official, judge, prosecutor or security officer."""
    return _roles(_exposure(f, kb, Stance.OFFICE), kb, _state_context(f))


def political_opposition(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """An insider who broke with the leadership, a funder or candidate of the opposition, a
    campaigner for independence or autonomy."""
    return _roles(_exposure(f, kb, Stance.OPPOSITION), kb, None)


def change_of_power_context(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """The case follows a coup or another change of power."""
    return _roles(_exposure(f, kb, Stance.CHANGE_OF_POWER), kb, None)


def charge_assembly_protest(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """An assembly or protest offence: unauthorised gathering, rioting, damage at a protest."""
    evidence = _of(f, "assembly")
    return Firing(evidence) if evidence else None


def violent_charge_against_opponent(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """A violent, sexual or terrorism charge against a person with a political profile."""
    charge = _of(f, "violent", "sexual", "terrorism", "property_damage") + f.charge_cues.get(
        "victim_detail", []
    )
    if not charge or run("charge_vague_extremism_terrorism", f, kb) is not None:
        return None  # a vague terrorism label has its own indicator
    person = _opponent(f, kb)
    if not person:
        return None
    return Firing(charge + person[:2])


def foreign_investigation_closed(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Authorities investigated the same allegations and closed the case."""
    evidence = _cue(f, "foreign_investigation_closed")
    return Firing(evidence) if evidence else None


def independent_political_finding(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """An independent monitor recognised the person as a political prisoner, found the
    detention arbitrary or regards the prosecution as politically motivated."""
    evidence = _cue(f, "independent_political_finding")
    motive, monitor = _cue(f, "politically_motivated"), _cue(f, "independent_monitor")
    if motive and monitor:  # a monitor's word, not only the person's own claim
        evidence += motive[:1] + monitor[:1]
    return Firing(evidence) if evidence else None


def _victims(f: Facts) -> list[Evidence]:
    """A charge that alleges harm to a person: a violent or sexual offence, or victim words.
    Arson or damage to property alleges no victim on its own (``property_damage``)."""
    return _of(f, "violent", "sexual") + f.charge_cues.get("victim_detail", [])


# The groups whose evidence is about this case (not the requesting state's record in general):
# their indicators are the political, protective and procedural factors.
_CASE_GROUPS = ("charge", "profile", "protection", "procedure")


def _factor_codes(kb: KnowledgeBase) -> list[str]:
    """The indicators of the case's own groups, in the release's order: read from the
    scoring table, so a new indicator counts as soon as it has a group."""
    return [
        code
        for code, spec in kb.scoring.indicators.items()
        if spec.group in _CASE_GROUPS and spec.kind is IndicatorKind.INDICATOR
    ]


def _any_factor(f: Facts, kb: KnowledgeBase) -> bool:
    """With any factor fired, the victims counter-indicator stays silent."""
    return any(run(code, f, kb) is not None for code in _factor_codes(kb))


def _person_described(f: Facts) -> bool:
    """Something about the person was submitted: without it, nothing political can have been
    seen, and silence is not evidence."""
    status = f.subject.refugee_status
    return f.person_described or (status is not None and status.status.value != "unknown")


def ordinary_crime_with_victims(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Counter: a violent or sexual crime with alleged victims, the person described, and no
    political, protection or procedural factor at all."""
    victims = _victims(f)
    if not victims or not _person_described(f) or _any_factor(f, kb):
        return None
    return Firing(victims + f.charge_cues.get("weapon_detail", []))


def found_compliant_elsewhere(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Counter: a court of another state or the CCF found the request an ordinary-law
    matter."""
    evidence = f.cues.get("found_compliant", [])
    return Firing(evidence) if evidence else None


def co_accused_convicted(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Counter: co-accused in the same case were convicted, and the person has no political
    profile."""
    evidence = f.cues.get("co_accused_convicted", [])
    if not evidence or _political_person(f, kb) or _protected(f):
        return None
    return Firing(evidence)


def corroborated(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Independent signs in two, or three or more, of the case's own groups (charge, profile,
    protection, procedure) point the same way."""
    specs = kb.scoring.indicators
    groups: dict[str, Evidence] = {}
    for code in _factor_codes(kb):
        group = specs[code].group
        if group not in groups:
            firing = run(code, f, kb)
            if firing is not None and firing.evidence and points_for(specs[code], firing) > 0:
                groups[group] = firing.evidence[0]
    if len(groups) < 2:
        return None
    level = "three_or_more" if len(groups) >= 3 else "two"
    return Firing([groups[g] for g in _CASE_GROUPS if g in groups], level)


def points_for(spec: IndicatorSpec, firing: Firing) -> int:
    """The points a firing earns: by its level where the indicator is graded."""
    if spec.points_by_level and firing.level is not None:
        return spec.points_by_level.get(firing.level, 0)
    return spec.points


def protection_need(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Return risk: refugee status held, or asylum sought, against the requesting state."""
    level = refugee_level(f)
    if level not in ("recognised", "asylum_pending"):
        return None
    ev = _ev("subject.refugee_status.status", level, f"refugee_status:{level}")
    return Firing([ev], level)


def profile_at_risk_in_detention(f: Facts, kb: KnowledgeBase) -> Firing | None:
    """Return risk: a political profile in a state documented as ill-treating detainees."""
    risk = f.country.torture_risk
    if not f.documented_state or risk.level not in (Level.STRONG, Level.MODERATE):
        return None
    person = _political_person(f, kb)
    if not person:
        return None
    return Firing(person[:4], None, list(risk.source_ids))


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
    "state_baseline": state_baseline,
    "political_exposure": political_exposure,
    "political_opposition": political_opposition,
    "change_of_power_context": change_of_power_context,
    "charge_assembly_protest": charge_assembly_protest,
    "violent_charge_against_opponent": violent_charge_against_opponent,
    "foreign_investigation_closed": foreign_investigation_closed,
    "independent_political_finding": independent_political_finding,
    "corroborated": corroborated,
    "ordinary_crime_with_victims": ordinary_crime_with_victims,
    "found_compliant_elsewhere": found_compliant_elsewhere,
    "co_accused_convicted": co_accused_convicted,
    "protection_need": protection_need,
    "profile_at_risk_in_detention": profile_at_risk_in_detention,
}
