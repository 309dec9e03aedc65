"""Facts the rules read: what the free text and the structured fields say, matched against
the knowledge base once per screening."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from app.engine.inputs import Notice, ScreeningInput, Subject
from app.kb.compiled import Hit
from app.kb.loader import DEFAULT_COUNTRY, KnowledgeBase
from app.kb.schema import Baseline, Country, Measure, MeasureKind, NoticeType
from app.kb.text import has_cjk, normalise, origins

# Which kinds of knowledge-base entry count in which input field. A charge may name a group
# ("FETÖ membership"); a narrative may name a profession, a group or a cue, but an offence word
# in the narrative ("accused of fraud") is not the charge.
_SUBJECT_FIELDS = ("ethnicity", "religion", "occupation", "political_activity")
_KINDS_BY_FIELD: dict[str, frozenset[str]] = {
    "subject.ethnicity": frozenset({"group"}),
    "subject.religion": frozenset({"group"}),
    "subject.occupation": frozenset({"group", "tag", "exposure"}),
    "subject.political_activity": frozenset({"group", "tag", "cue", "exposure"}),
    "subject.affiliations": frozenset({"group", "tag", "exposure"}),
    "notice.charges": frozenset({"group", "category", "provision", "cue"}),
    "notice.legal_provisions": frozenset({"category", "provision"}),
    "context": frozenset({"group", "cue", "exposure"}),
}


class Evidence(NamedTuple):
    """Evidence while the rules run: a plain tuple, turned into the API's model only for the
    indicators that fire (most matches never reach a result)."""

    field: str
    matched_text: str
    knowledge_base_entry: str
    start: int = -1  # the match's span in the field's normalised text (-1: not from text)
    end: int = -1


@dataclass(slots=True)
class Facts:
    subject: Subject
    notice: Notice
    issuing_country: str | None
    country: Country
    documented_state: bool
    baseline: Baseline | None = None
    groups: dict[str, list[Evidence]] = field(default_factory=dict)
    tags: dict[str, list[Evidence]] = field(default_factory=dict)
    categories: dict[str, list[Evidence]] = field(default_factory=dict)
    provisions: dict[str, list[Evidence]] = field(default_factory=dict)
    cues: dict[str, list[Evidence]] = field(default_factory=dict)
    charge_cues: dict[str, list[Evidence]] = field(default_factory=dict)
    exposure: dict[str, list[Evidence]] = field(default_factory=dict)
    # Each free-text field as it was typed, by label, so evidence can quote what was written.
    texts: dict[str, str] = field(default_factory=dict)
    norms: dict[str, str] = field(default_factory=dict)
    _origins: dict[str, list[int] | None] = field(default_factory=dict)
    # Rule results, computed once: some rules read others (corroboration, the counters).
    fired: dict[str, object] = field(default_factory=dict)

    def typed(self, ev: Evidence) -> str:
        """The words of ``ev`` as they were typed (its normalised form where the field's text
        cannot be mapped back)."""
        text = self.texts.get(ev.field)
        if text is None or ev.start < 0:
            return ev.matched_text
        if text.isascii():
            quoted = _ascii_span(text, self.norms[ev.field], ev.start, ev.end)
            if quoted is not None:
                return quoted
        if ev.field not in self._origins:
            self._origins[ev.field] = origins(text)
        where = self._origins[ev.field]
        if where is None or ev.end > len(where) or ev.start >= ev.end:
            return ev.matched_text
        stop = where[ev.end - 1] + 1
        # A term matches at a word start ("экстремис" in "экстремистской"): quote the whole word.
        while stop < len(text) and text[stop].isalnum() and not has_cjk(text[stop]):
            stop += 1
        return text[where[ev.start] : stop]

    @property
    def issued_year(self) -> int | None:
        return int(self.notice.issued_date[:4]) if self.notice.issued_date else None

    @property
    def person_described(self) -> bool:
        """Something is said about who the person is (refugee status aside)."""
        s = self.subject
        return bool(
            s.profile_tags
            or s.occupation
            or s.political_activity
            or s.affiliations
            or s.ethnicity
            or s.religion
        )

    @property
    def is_diffusion(self) -> bool:
        return self.notice.type is NoticeType.DIFFUSION

    def prior_review(self) -> tuple[Measure | None, bool | None]:
        """The requesting state's dated prior review of its diffusions, if INTERPOL applies
        one, and whether the notice was issued on or after its date (None: not known)."""
        if not self.documented_state:
            return None, None
        for m in self.country.measures:
            if m.kind is MeasureKind.DIFFUSION_PRIOR_REVIEW:
                return m, on_or_after(self.notice.issued_date, m.since)
        return None, None


def on_or_after(partial: str | None, since: str) -> bool | None:
    """Whether a date given as YYYY, YYYY-MM or YYYY-MM-DD falls on or after ``since``
    (YYYY-MM-DD): None when it is missing or its precision straddles ``since``."""
    if not partial:
        return None
    head = since[: len(partial)]
    if partial != head:
        return partial > head
    return True if len(partial) == len(since) else None


@functools.lru_cache(maxsize=4096)
def _words(norm_match: str) -> re.Pattern[str]:
    """A pattern for the typed form of an ASCII match: its words, with anything but letters
    and digits between them, in any case."""
    return re.compile(r"[\W_]*".join(map(re.escape, norm_match.split())), re.IGNORECASE)


def _ascii_span(text: str, norm: str, start: int, end: int) -> str | None:
    """The typed words of the normalised span ``norm[start:end]`` of an ASCII ``text``: the
    k-th occurrence in the text is the k-th in its normalised form (lower-casing ASCII keeps
    letters and digits in place and order)."""
    match = norm[start:end]
    if not match or "¦" in match:
        return None
    k = norm.count(match, 0, start)
    for n, m in enumerate(_words(match).finditer(text)):
        if n == k:
            if normalise(m.group()) != match:
                return None  # the two counts disagree: let the slower mapping decide
            stop = m.end()
            while stop < len(text) and text[stop].isalnum():
                stop += 1
            return text[m.start() : stop]
    return None


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
        baseline=kb.baseline(issuing),
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
        found, norm = kb.matcher.scan(text, allowed)
        hits = [h for h in found if not h.negated]
        facts.texts[label] = text
        facts.norms[label] = norm
        for hit in hits:
            if (
                hit.kind == "exposure"
                and key == "context"
                and not kb.exposure_roles[hit.ref].in_context
            ):
                continue  # a narrative's judge or officer is seldom the person
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
                            start=lo.start,
                            end=hi.end,
                        ),
                    )
                    break


def _clause_between(a: Hit, b: Hit) -> bool:
    return b.clause != a.clause


def _record(facts: Facts, kb: KnowledgeBase, label: str, hit: Hit) -> None:
    ev = Evidence(label, hit.matched, f"{hit.kind}:{hit.ref}", hit.start, hit.end)
    if hit.kind == "group":
        _add(facts.groups, hit.ref, ev)
    elif hit.kind == "tag":
        _add(facts.tags, hit.ref, ev)
    elif hit.kind == "category":
        _add(facts.categories, hit.ref, ev)
    elif hit.kind == "exposure":
        _add(facts.exposure, hit.ref, ev)
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
            Evidence(label, hit.matched, f"provision:{hit.ref}", hit.start, hit.end),
        )
