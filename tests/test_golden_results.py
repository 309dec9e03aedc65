"""Every labelled evaluation case's result, pinned: a digest of what the engine decided for it
(score, flag, each indicator's points, evidence, patterns and sources, the formula, confidence,
return risk, the grounds offered, missing information, similar cases). Texts (labels,
explanations, source titles) are left out, so rewording the knowledge base does not move a
digest; a change to what is matched or scored does, on purpose.

After an intended change, regenerate with ``UPDATE_GOLDEN=1 python -m pytest
tests/test_golden_results.py`` and review the ids it reports. The file holds digests only, so
it reveals nothing of the holdout's results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from app.engine import ScreeningInput, screen
from app.engine.result import Indicator, ScreeningResult
from app.evaluate import load_cases
from app.kb.loader import KnowledgeBase

GOLDEN = Path(__file__).parent / "golden" / "results.sha256.json"


def _indicator(i: Indicator) -> dict[str, Any]:
    return {
        "code": i.code,
        "points": i.points,
        "group": i.group,
        "evidence": [[e.field, e.matched_text, e.knowledge_base_entry] for e in i.evidence],
        "patterns": i.patterns,
        "sources": i.source_ids,
    }


def behaviour(result: ScreeningResult) -> dict[str, Any]:
    """What the engine decided, without the knowledge base's wording."""
    grounds = [
        {k: v for k, v in g.model_dump(mode="json").items() if k in ("basis", "status")}
        for g in result.challenge_grounds
    ]
    return {
        "score": result.score,
        "flag": result.flag.value,
        "formula": result.score_formula.model_dump(mode="json", exclude={"expression"}),
        "indicators": [_indicator(i) for i in result.indicators],
        "counter_indicators": [_indicator(i) for i in result.counter_indicators],
        "confidence": [result.confidence.level.value, [r.code for r in result.confidence.reasons]],
        "return_risk": {
            "level": result.return_risk.level.value,
            "score": result.return_risk.score,
            "indicators": [_indicator(i) for i in result.return_risk.indicators],
            "formula": result.return_risk.score_formula.model_dump(
                mode="json", exclude={"expression"}
            ),
        },
        "grounds": grounds,
        "missing": [m.field for m in result.missing_information],
        "similar": [[c.id, c.shared] for c in result.similar_cases],
        "sources": sorted(result.sources),
    }


def digest(result: ScreeningResult) -> str:
    canonical = json.dumps(behaviour(result), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _digests(kb: KnowledgeBase) -> dict[str, str]:
    return {
        case["id"]: digest(screen(ScreeningInput.model_validate(case["request"]), kb))
        for case in load_cases()
    }


def test_every_case_gives_its_pinned_result(kb: KnowledgeBase) -> None:
    now = _digests(kb)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=0, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"wrote {len(now)} digests to {GOLDEN.name}")
    pinned = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert set(now) == set(pinned), "cases added or removed: regenerate the digests"
    changed = sorted(case for case in now if now[case] != pinned[case])
    assert not changed, f"{len(changed)} results changed: {changed[:20]}"


def test_the_digest_sees_evidence_points_and_grounds(kb: KnowledgeBase) -> None:
    body = {
        "subject": {"profile_tags": ["journalist"]},
        "notice": {"issuing_country": "TR", "charges": "Insulting the president"},
    }
    result = screen(ScreeningInput.model_validate(body), kb)
    base = digest(result)
    first = result.indicators[0]
    moved = first.model_copy(update={"points": first.points + 1})
    assert digest(result.model_copy(update={"indicators": [moved, *result.indicators[1:]]})) != base
    ev = first.evidence[0].model_copy(update={"field": "notice.other"})
    renamed = first.model_copy(update={"evidence": [ev, *first.evidence[1:]]})
    assert (
        digest(result.model_copy(update={"indicators": [renamed, *result.indicators[1:]]})) != base
    )
    assert digest(result.model_copy(update={"challenge_grounds": []})) != base
    # Wording is not behaviour.
    relabelled = first.model_copy(update={"label": "x", "explanation": "y"})
    assert (
        digest(result.model_copy(update={"indicators": [relabelled, *result.indicators[1:]]}))
        == base
    )
