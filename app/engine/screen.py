"""``screen(request, kb)``: the whole screening, pure and deterministic.

Same input and same knowledge-base release, same result: no clock, no randomness, no I/O.
Ordering is fixed everywhere (the knowledge base's rule order, sorted ids) so the JSON is
byte-stable.
"""

from __future__ import annotations

import functools

from app.engine.facts import Evidence as RawEvidence
from app.engine.facts import Facts, gather
from app.engine.grounds import grounds as _grounds
from app.engine.grounds import sentenced
from app.engine.inputs import ScreeningInput
from app.engine.result import (
    Confidence,
    ConfidenceLevel,
    ConfidenceReason,
    Evidence,
    Flag,
    GroupSubtotal,
    Indicator,
    KnowledgeBaseRef,
    MissingInformation,
    ReturnRisk,
    ScoreFormula,
    ScreeningResult,
    SimilarCase,
    SourceRef,
    Thresholds,
)
from app.engine.rules import Firing, points_for, run
from app.kb.loader import KnowledgeBase
from app.kb.schema import Assessment, IndicatorKind
from app.kb.schema import Thresholds as ThresholdSpec

ENGINE_VERSION = "2.1.0"
MAX_SOURCES_PER_ITEM = 6
MAX_SIMILAR_CASES = 5


def _dedupe(ids: list[str], limit: int = MAX_SOURCES_PER_ITEM) -> list[str]:
    seen: list[str] = []
    for i in ids:
        if i not in seen:
            seen.append(i)
    return seen[:limit]


def _patterns_for(code: str, level: str | None, facts: Facts, kb: KnowledgeBase) -> list[str]:
    """Patterns this indicator signals at this level: those documented for the requesting
    state (all of them when the state has no profile)."""
    candidates = [
        p
        for p in kb.index.patterns_by_indicator.get(code, ())
        if code not in kb.patterns[p].levels or level in kb.patterns[p].levels[code]
    ]
    if not facts.documented_state:
        return list(candidates)
    documented = facts.country.patterns
    return [p for p in candidates if p in documented]


def _fire(facts: Facts, kb: KnowledgeBase) -> list[Indicator]:
    fired: list[Indicator] = []
    for code, spec in kb.scoring.indicators.items():
        firing = run(code, facts, kb)
        if firing is None:
            continue
        points = points_for(spec, firing)
        if points == 0:
            continue
        fired.append(
            Indicator(
                code=code,
                label=spec.label,
                points=points,
                group=spec.group,
                explanation=spec.description,
                evidence=_evidence(firing, facts),
                patterns=_patterns_for(code, firing.level, facts, kb),
                source_ids=_dedupe(firing.source_ids + list(spec.source_ids)),
            )
        )
    return fired


def _evidence(firing: Firing, facts: Facts) -> list[Evidence]:
    """The firing's evidence, each quoting the words as they were typed; matches that overlap
    in the same field ("former minister" and "minister of") are quoted once, merged."""
    kept: list[RawEvidence] = []
    for e in firing.evidence:
        for n, k in enumerate(kept):
            if _overlap(e, k):
                kept[n] = k._replace(start=min(k.start, e.start), end=max(k.end, e.end))
                break
            if k.start < 0 and e.start < 0 and k == e:
                break  # the same structured value matched twice: one row
        else:
            kept.append(e)
    return [
        Evidence(
            field=e.field, matched_text=facts.typed(e), knowledge_base_entry=e.knowledge_base_entry
        )
        for e in kept[:MAX_EVIDENCE]
    ]


def _overlap(a: RawEvidence, b: RawEvidence) -> bool:
    """Two matches share characters of the same field's text."""
    if a.field != b.field or a.start < 0 or b.start < 0:
        return False
    return a.start < b.end and b.start < a.end


MAX_EVIDENCE = 12
_EXPRESSION = (
    "score = clamp(max(sum over groups of clamp(sum of the group's points, -cap, cap), "
    "protected_floor), 0, 100), where protected_floor is the sum of the subtotals of the "
    "protected groups ({protected}); level = severe if score >= severe, high if >= high, "
    "elevated if >= elevated, else low"
)


def _score(indicators: list[Indicator], kb: KnowledgeBase, protected: list[str]) -> ScoreFormula:
    caps = kb.scoring.group_caps
    groups: dict[str, GroupSubtotal] = {}
    for group in sorted({i.group for i in indicators}):
        points = [i.points for i in indicators if i.group == group]
        cap = caps.get(group, 100)
        total = sum(points)
        subtotal = max(-cap, min(cap, total))
        groups[group] = GroupSubtotal(points=points, cap=cap, subtotal=subtotal)
    raw = sum(g.subtotal for g in groups.values())
    floor = sum(g.subtotal for name, g in groups.items() if name in protected)
    score = max(0, min(100, max(raw, floor)))
    return ScoreFormula(
        expression=_EXPRESSION.format(protected=", ".join(protected) or "none"),
        groups=groups,
        raw_total=raw,
        protected_floor=floor,
        score=score,
    )


def _level(score: int, t: ThresholdSpec) -> Flag:
    if score >= t.severe:
        return Flag.SEVERE
    if score >= t.high:
        return Flag.HIGH
    if score >= t.elevated:
        return Flag.ELEVATED
    return Flag.LOW


@functools.cache
def _missing_item(field: str, why: str) -> MissingInformation:
    """The few distinct items are built once and shared (results are never mutated)."""
    return MissingInformation(field=field, why=why)


def _missing(facts: Facts, request: ScreeningInput) -> list[MissingInformation]:
    s, n = facts.subject, facts.notice
    out: list[MissingInformation] = []

    def need(field: str, why: str) -> None:
        out.append(_missing_item(field, why))

    if n.issuing_country is None:
        need(
            "notice.issuing_country",
            "The requesting state's documented record and torture "
            "risk cannot be weighed without it.",
        )
    if not n.charges and not n.legal_provisions:
        need(
            "notice.charges",
            "The charge decides whether the offence is political, excluded by "
            "RPD Article 83, or a serious ordinary-law crime.",
        )
    elif not n.legal_provisions:
        need(
            "notice.legal_provisions",
            "Provisions documented as used against critics add "
            "weight and identify the offence precisely.",
        )
    if n.type is None or n.type.value == "unknown":
        need(
            "notice.type",
            "A diffusion is sent directly by a member country, and INTERPOL's review of it "
            "differs from a Red Notice's; the type also decides which rules apply.",
        )
    if s.refugee_status is None or s.refugee_status.status.value == "unknown":
        mention = (
            " The narrative mentions refugee status or asylum."
            if "protection_mention" in facts.cues
            else ""
        )
        need(
            "subject.refugee_status",
            "Under INTERPOL's refugee policy a confirmed refugee or asylum-seeker status "
            "generally stops the processing of requests from the state the person fears "
            "persecution by; a pending claim weighs less." + mention,
        )
    elif s.refugee_status.persecution_country is None and s.refugee_status.status.value in (
        "recognised",
        "asylum_pending",
    ):
        need(
            "subject.refugee_status.persecution_country",
            "The refugee policy concerns requests from the state where the person fears "
            "persecution: say which state that is (it was taken to be the requesting state).",
        )
    if not (s.profile_tags or s.occupation or s.political_activity or s.affiliations):
        need(
            "subject.profile_tags",
            "Journalists, rights defenders, opposition figures and "
            "members of targeted groups are documented targets; say what the person does.",
        )
    if n.issued_date is None or s.left_requesting_country_year is None:
        need(
            "notice.issued_date",
            "With the year the person left the requesting state, it "
            "shows whether the notice followed departure or criticism.",
        )
    if n.conviction_in_absentia is None and not _pre_trial(facts):
        need(
            "notice.conviction_in_absentia",
            "Whether the person was convicted in absentia, knew of the proceedings and can "
            "obtain a retrial decides a fair-trial objection.",
        )
    if not request.context:
        need(
            "context",
            "Pressure on relatives, earlier refusals or deletions, and the timeline "
            "are signs the structured fields cannot carry.",
        )
    return out


def _pre_trial(facts: Facts) -> bool:
    """The texts say the person is sought for prosecution, and nothing says a sentence was
    passed: a question about a conviction in absentia does not arise."""
    said = facts.cues.get("pre_trial") or facts.charge_cues.get("pre_trial")
    return bool(said) and not sentenced(facts)


# Weights for ranking similar cases by what they share with the screening.
_SHARE_WEIGHT = {"country": 2, "group": 3, "pattern": 2, "tag": 1}
_MIN_SHARE = 4


def _similar(facts: Facts, indicators: list[Indicator], kb: KnowledgeBase) -> list[SimilarCase]:
    keys: list[tuple[str, int]] = []
    if facts.issuing_country:
        keys.append((f"country:{facts.issuing_country}", _SHARE_WEIGHT["country"]))
    keys += [(f"group:{g}", _SHARE_WEIGHT["group"]) for g in sorted(facts.groups)]
    patterns = sorted({p for i in indicators for p in i.patterns})
    keys += [(f"pattern:{p}", _SHARE_WEIGHT["pattern"]) for p in patterns]
    keys += [(f"tag:{t}", _SHARE_WEIGHT["tag"]) for t in sorted(facts.tags)]
    index = kb.index.cases_by_key
    scores: dict[str, int] = {}
    shared: dict[str, list[str]] = {}
    for key, weight in keys:
        cases = index.get(key)
        if not cases:
            continue
        what = key.replace("tag:", "profile_tag:", 1)
        for case_id in cases:
            scores[case_id] = scores.get(case_id, 0) + weight
            shared.setdefault(case_id, []).append(what)
    ranked = sorted((-score, cid) for cid, score in scores.items() if score >= _MIN_SHARE)
    out = []
    for _, cid in ranked[:MAX_SIMILAR_CASES]:
        c = kb.cases[cid]
        out.append(
            SimilarCase(
                id=c.id,
                name=c.name,
                country=c.country,
                year=c.year,
                outcome=c.outcome,
                label=c.label.value,
                shared=shared[cid],
                source_ids=list(c.source_ids),
            )
        )
    return out


# Source references are the same for every result of a release: build them once per release.
_REFS: dict[str, dict[str, SourceRef]] = {}


def _source_refs(kb: KnowledgeBase) -> dict[str, SourceRef]:
    refs = _REFS.get(kb.sha256)
    if refs is None:
        refs = {
            sid: SourceRef.model_construct(
                title=src.title,
                publisher=src.publisher,
                year=src.year,
                url=kb.index.source_urls[sid],
            )
            for sid, src in kb.sources.items()
        }
        if len(_REFS) > 8:  # a few releases at most live in one process
            _REFS.clear()
        _REFS[kb.sha256] = refs
    return refs


def _return_risk(fired: list[Indicator], kb: KnowledgeBase) -> ReturnRisk:
    formula = _score(fired, kb, [])
    t = kb.scoring.return_risk_thresholds
    return ReturnRisk(
        level=_level(formula.score, t),
        score=formula.score,
        thresholds=Thresholds(elevated=t.elevated, high=t.high, severe=t.severe),
        indicators=fired,
        score_formula=formula,
        source_ids=_dedupe([s for i in fired for s in i.source_ids], limit=24),
    )


def _reason(code: str, text: str) -> ConfidenceReason:
    return _REASONS.setdefault((code, text), ConfidenceReason(code=code, text=text))


_REASONS: dict[tuple[str, str], ConfidenceReason] = {}


def _confidence(facts: Facts, request: ScreeningInput, flag: Flag) -> Confidence:
    """How much the result rests on: each missing fact and an undocumented state costs
    confidence, never points."""
    s, n = facts.subject, facts.notice
    described = facts.person_described
    reasons: list[ConfidenceReason] = []
    weight = 0
    if n.issuing_country is None:
        reasons.append(_reason("no_requesting_state", "The requesting state is not given."))
        weight += 2
    elif not facts.documented_state:
        if facts.baseline is None or facts.baseline.freedom_in_the_world is None:
            reasons.append(
                _reason(
                    "requesting_state_undocumented",
                    "The knowledge base has no profile and no global baseline for the "
                    "requesting state: its record could not be weighed.",
                )
            )
            weight += 2
        else:
            reasons.append(
                _reason(
                    "requesting_state_baseline_only",
                    "The requesting state has no detailed profile; only global indices were "
                    "weighed.",
                )
            )
            weight += 1
    if not n.charges and not n.legal_provisions:
        reasons.append(_reason("no_charges", "The charge is not given."))
        weight += 2
    if not described:
        reasons.append(
            _reason(
                "no_subject_information",
                "Nothing is said about who the person is (occupation, political activity, "
                "affiliations, ethnicity, religion): a political profile cannot have been seen.",
            )
        )
        weight += 2
    if s.refugee_status is None or s.refugee_status.status.value == "unknown":
        reasons.append(_reason("refugee_status_unknown", "Refugee or asylum status is not given."))
        weight += 1
    elif (
        s.refugee_status.persecution_country is None
        and s.refugee_status.status.value in ("recognised", "asylum_pending")
        and n.issuing_country is not None
        and s.refugee_status.granted_by != n.issuing_country
    ):
        reasons.append(
            _reason(
                "persecution_country_assumed",
                "The state the person fled is not given: the protection was taken to be "
                "against the requesting state.",
            )
        )
        weight += 1
    if not request.context:
        reasons.append(
            _reason(
                "no_context",
                "No narrative: earlier decisions, timing and pressure on relatives are unknown.",
            )
        )
        weight += 1
    if weight >= 3 or (flag is Flag.LOW and not described):
        level = ConfidenceLevel.LOW
    elif weight >= 1:
        level = ConfidenceLevel.MEDIUM
    else:
        level = ConfidenceLevel.HIGH
    return Confidence(level=level, reasons=reasons)


# What a lawyer should add first when confidence is low: the facts that most often change
# the answer.
_FIRST_WHEN_UNSURE = (
    "subject.profile_tags",
    "notice.charges",
    "notice.issuing_country",
    "context",
    "subject.refugee_status",
)


def _ordered(missing: list[MissingInformation], confidence: Confidence) -> list[MissingInformation]:
    if confidence.level is not ConfidenceLevel.LOW:
        return missing
    rank = {f: i for i, f in enumerate(_FIRST_WHEN_UNSURE)}
    return sorted(missing, key=lambda m: rank.get(m.field, len(rank)))


def screen(request: ScreeningInput, kb: KnowledgeBase) -> ScreeningResult:
    """Screen one request against one knowledge-base release."""
    facts = gather(request, kb)
    fired = _fire(facts, kb)
    specs = kb.scoring.indicators
    abuse = [i for i in fired if specs[i.code].assessment is Assessment.ABUSE]
    returns = [i for i in fired if specs[i.code].assessment is Assessment.RETURN_RISK]
    indicators = [i for i in abuse if specs[i.code].kind is IndicatorKind.INDICATOR]
    counters = [i for i in abuse if specs[i.code].kind is IndicatorKind.COUNTER_INDICATOR]
    formula = _score(abuse, kb, kb.scoring.protected_groups)
    flag = _level(formula.score, kb.scoring.thresholds)
    grounds = _grounds(indicators + returns, facts, kb)
    similar = _similar(facts, indicators, kb)
    cited = (
        [s for i in fired for s in i.source_ids]
        + [s for g in grounds for s in g.source_ids]
        + [s for c in similar for s in c.source_ids]
    )
    refs = _source_refs(kb)
    sources = {sid: refs[sid] for sid in sorted(set(cited))}
    t = kb.scoring.thresholds
    confidence = _confidence(facts, request, flag)
    return ScreeningResult(
        score=formula.score,
        flag=flag,
        thresholds=Thresholds(elevated=t.elevated, high=t.high, severe=t.severe),
        confidence=confidence,
        return_risk=_return_risk(returns, kb),
        indicators=indicators,
        counter_indicators=counters,
        challenge_grounds=grounds,
        missing_information=_ordered(_missing(facts, request), confidence),
        similar_cases=similar,
        sources=sources,
        score_formula=formula,
        engine_version=ENGINE_VERSION,
        knowledge_base=KnowledgeBaseRef(version=kb.version, sha256=kb.sha256),
    )
