"""The engine on the labelled set of documented cases (names withheld from every input)."""

from __future__ import annotations

from app.evaluate import evaluate, load_cases
from app.kb.loader import KnowledgeBase


def test_evaluation_thresholds(kb: KnowledgeBase) -> None:
    cases = load_cases()
    assert len(cases) >= 40
    for case in cases:
        subject = case["request"].get("subject") or {}
        assert "full_name" not in subject
        assert "aliases" not in subject
        assert case["source_ids"], case["id"]
        assert set(case["source_ids"]) <= set(kb.sources), case["id"]
    report = evaluate(kb, cases)
    print(report.render())
    print(
        f"EVALMETRIC cases={len(cases)} high_risk_recall={report.high_risk_recall:.3f} "
        f"low_risk_specificity={report.low_risk_specificity:.3f} misses={len(report.misses)}"
    )
    assert {o.label for o in report.outcomes} >= {"abusive", "legitimate", "contested"}
    assert report.high_risk_recall >= 0.85
    flagged_high = [o.id for o in report.low_risk if o.flag.value in ("high", "severe")]
    assert flagged_high == []
