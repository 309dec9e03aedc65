"""Facts the rules read: what the free text and the structured fields say, matched against
the knowledge base once per screening."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from app.engine.inputs import Notice, ScreeningInput, Subject
from app.kb.compiled import Hit
from app.kb.loader import DEFAULT_COUNTRY, KnowledgeBase
from app.kb.schema import Country, NoticeType

# Which kinds of knowledge-base entry count in which input field. A charge may name a group
# ("FETÖ membership"); a narrative may name a profession, a group or a cue, but an offence word
# in the narrative ("accused of fraud") is not the charge.
_SUBJECT_FIELDS = ("ethnicity", "religion", "occupation", "political_activity")
_KINDS_BY_FIELD: dict[str, frozenset[str]] = {
    "subject.ethnicity": frozenset({"group"}),
    "subject.religion": frozenset({"group"}),
    "subject.occupation": frozenset({"group", "tag"}),
    "subject.political_activity": frozenset({"group", "tag", "cue"}),
    "subject.affiliations": frozenset({"group", "tag"}),
    "notice.charges": frozenset({"group", "category", "provision", "cue"}),
    "notice.legal_provisions": frozenset({"category", "provision"}),
    "context": frozenset({"group", "cue"}),
}


class Evidence(NamedTuple):
    """Evidence while the rules run: a plain tuple, turned into the API's model only for the
    indicators that fire (most matches never reach a result)."""

    field: str
    matched_text: str
    knowledge_base_entry: str


@dataclass(slots=True)
class Facts:
    subject: Subject
    notice: Notice
    issuing_country: str | None
    country: Country
    documented_state: bool
    groups: dict[str, list[Evidence]] = field(default_factory=dict)
    tags: dict[str, list[Evidence]] = field(default_factory=dict)
    categories: dict[str, list[Evidence]] = field(default_factory=dict)
    provisions: dict[str, list[Evidence]] = field(default_factory=dict)
    cues: dict[str, list[Evidence]] = field(default_factory=dict)
    charge_cues: dict[str, list[Evidence]] = field(default_factory=dict)

    @property
    def issued_year(self) -> int | None:
        return int(self.notice.issued_date[:4]) if self.notice.issued_date else None

    @property
    def is_diffusion(self) -> bool:
        return self.notice.type is NoticeType.DIFFUSION


def _add(bucket: dict[str, list[Evidence]], key: str, ev: Evidence) -> None:
    found = bucket.setdefault(key, [])
    if all(e.field != ev.field or e.matched_text != ev.matched_text for e in found):
        found.append(ev)


def _texts(subject: Subject, notice: Notice, context: str | None) -> Iterable[tuple[str, str, str]]:
    """(field label, kind key, text) for every free-text field that is present."""
    for name in _SUBJECT_FIELDS:
        value = getattr(subject, name)
        if value:
            yield f"subject.{name}", f"subject.{name}", value
    for i, value in enumerate(subject.affiliations):
        yield f"subject.affiliations[{i}]", "subject.affiliations", value
    if notice.charges:
        yield "notice.charges", "notice.charges", notice.charges
    for i, value in enumerate(notice.legal_provisions):
        yield f"notice.legal_provisions[{i}]", "notice.legal_provisions", value
    if context:
        yield "context", "context", context


def gather(request: ScreeningInput, kb: KnowledgeBase) -> Facts:
    subject, notice = request.effective()
    issuing = notice.issuing_country
    country = kb.country(issuing)
    facts = Facts(
        subject=subject,
        notice=notice,
        issuing_country=issuing,
        country=country,
        documented_state=issuing is not None and country.iso2 != DEFAULT_COUNTRY,
    )
    for tag in subject.profile_tags:
        _add(
            facts.tags,
            tag.value,
            Evidence(
                field="subject.profile_tags",
                matched_text=tag.value,
                knowledge_base_entry=f"profile_tag:{tag.value}",
            ),
        )
    for label, key, text in _texts(subject, notice, request.context):
        allowed = _KINDS_BY_FIELD[key]
        hits = [h for h in kb.matcher.find(text, allowed) if not h.negated]
        for hit in hits:
            _record(facts, kb, label, hit)
        if key in ("context", "subject.political_activity"):
            _pairs(facts, label, hits)
    return facts


# Cue pairs that make one fact together when they stand in the same clause, close together:
# "relatives in Xinjiang were detained" is a relative plus a coercive act.
PAIRED_CUES = {"family_pressure": ("family_member", "coercion")}
PAIR_WINDOW = 60


def _pairs(facts: Facts, label: str, hits: list[Hit]) -> None:
    for fact, (first, second) in PAIRED_CUES.items():
        lefts = [h for h in hits if h.kind == "cue" and h.ref == first]
        rights = [h for h in hits if h.kind == "cue" and h.ref == second]
        for a in lefts:
            for b in rights:
                lo, hi = (a, b) if a.start <= b.start else (b, a)
                if hi.start - lo.end <= PAIR_WINDOW and not _clause_between(lo, hi):
                    _add(
                        facts.cues,
                        fact,
                        Evidence(
                            field=label,
                            matched_text=f"{a.matched} … {b.matched}",
                            knowledge_base_entry=f"cue:{first}+{second}",
                        ),
                    )
                    break


def _clause_between(a: Hit, b: Hit) -> bool:
    return b.clause != a.clause


def _record(facts: Facts, kb: KnowledgeBase, label: str, hit: Hit) -> None:
    ev = Evidence(
        field=label, matched_text=hit.matched, knowledge_base_entry=f"{hit.kind}:{hit.ref}"
    )
    if hit.kind == "group":
        _add(facts.groups, hit.ref, ev)
    elif hit.kind == "tag":
        _add(facts.tags, hit.ref, ev)
    elif hit.kind == "category":
        _add(facts.categories, hit.ref, ev)
    elif hit.kind == "cue":
        _add(facts.charge_cues if label == "notice.charges" else facts.cues, hit.ref, ev)
    elif hit.kind == "provision":
        provision = kb.provisions[hit.ref]
        # A provision belongs to one jurisdiction: "Article 300" means nothing across borders.
        if facts.issuing_country is not None and provision.jurisdiction != facts.issuing_country:
            return
        _add(facts.provisions, hit.ref, ev)
        _add(
            facts.categories,
            provision.category,
            Evidence(
                field=label, matched_text=hit.matched, knowledge_base_entry=f"provision:{hit.ref}"
            ),
        )
