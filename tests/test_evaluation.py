"""The engine on the labelled set of documented cases (names withheld from every input), and the
evaluation's own rules: the split is pinned, the gate cannot pass on an empty set, and no
vocabulary entry names a person or a case's own wording."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.engine.result import Flag
from app.evaluate import (
    EVAL_DIR,
    GATE,
    FullReport,
    Outcome,
    Report,
    evaluate,
    evaluate_all,
    expected_level,
    load_cases,
    split_of,
)
from app.kb.loader import DATA_DIR, KnowledgeBase


@pytest.fixture(scope="module")
def cases() -> list[dict]:  # type: ignore[type-arg]
    return load_cases()


def test_cases_are_well_formed(kb: KnowledgeBase, cases: list[dict]) -> None:  # type: ignore[type-arg]
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids))
    for case in cases:
        subject = case["request"].get("subject") or {}
        assert "full_name" not in subject, case["id"]
        assert "aliases" not in subject, case["id"]
        assert case["label"] in ("abusive", "legitimate", "contested"), case["id"]
        assert expected_level(case) in ("low", "elevated", "high"), case["id"]
        if case.get("source_ids"):
            assert set(case["source_ids"]) <= set(kb.sources), case["id"]
        else:
            assert case["sources"], case["id"]
            for src in case["sources"]:
                assert src["url"].startswith("http"), case["id"]
                assert src["title"], case["id"]


def test_split_is_pinned() -> None:
    # The split is a hash of the id: these assignments never change.
    assert split_of("eval-cn-uyghur-translator-transit-2021") == "holdout"
    assert split_of("eval-ru-diffusion-after-refusals-2017") == "dev"
    assert split_of("control-ru-homicide-robbery") == "dev"
    shares = [split_of(f"case-{i}") == "dev" for i in range(2000)]
    assert 0.55 < sum(shares) / len(shares) < 0.65


def test_evaluation_gate(kb: KnowledgeBase, cases: list[dict]) -> None:  # type: ignore[type-arg]
    report = evaluate_all(kb, cases)
    print(report.render())
    for name in ("dev", "holdout", "ablation"):
        s = getattr(report, name).summary()
        print(f"EVALMETRIC split={name} " + " ".join(f"{k}={v}" for k, v in s.items()))
    # The set itself: size and breadth the evaluation needs to say anything.
    states = {o.state for o in report.dev.outcomes + report.holdout.outcomes}
    assert len(cases) >= 160
    assert len(states) >= 40
    assert len([c for c in cases if c["label"] == "legitimate"]) >= 40
    # Dev is what weights are set on. The three legitimate dev cases flagged high came with the
    # cases collected after release 2.2.0's weights were frozen (docs/validation.md): the next
    # round tunes them away; none may be added.
    assert len(report.dev.legitimate_flagged_high) <= MEASURED["dev_legitimate_flagged_high"]
    # The holdout is never tuned on. GATE holds the targets (docs/validation.md says which are
    # met); CI holds the figures measured for this release so that no change makes them worse.
    h, a = report.holdout, report.ablation
    assert h.high_risk_recall is not None
    assert h.high_risk_recall >= MEASURED["high_risk_recall"]
    assert h.specificity is not None
    assert h.specificity >= MEASURED["specificity"]
    assert len(h.legitimate_flagged_high) <= MEASURED["legitimate_flagged_high"]
    assert a.high_risk_recall is not None
    assert a.high_risk_recall >= MEASURED["ablation_recall"]


# The holdout figures of release 2.2.0 (docs/validation.md), below the targets in GATE.
MEASURED = {
    "high_risk_recall": 0.77,
    "specificity": 0.80,
    "legitimate_flagged_high": 5,
    "ablation_recall": 0.54,
    "dev_legitimate_flagged_high": 3,
}


def _outcome(expected: str, flag: Flag, label: str = "abusive") -> Outcome:
    return Outcome(
        id="x", label=label, state="ZZ", expected=expected, flag=flag, score=0, indicators=()
    )


def test_gate_fails_on_empty_sets() -> None:
    empty = Report([])
    assert empty.high_risk_recall is None
    assert empty.specificity is None
    full = FullReport(dev=empty, holdout=empty, ablation=empty, ablation_all=empty)
    assert not any(full.gate().values())


def test_gate_fails_when_everything_is_called_low() -> None:
    outcomes = [_outcome("high", Flag.LOW)] * 5 + [_outcome("low", Flag.LOW, "legitimate")] * 5
    r = Report(outcomes)
    full = FullReport(dev=r, holdout=r, ablation=r, ablation_all=r)
    gate = full.gate()
    assert gate["specificity"]
    assert not gate["high_risk_recall"]
    assert not gate["ablation_recall"]
    assert not gate["exact_agreement"]


def test_gate_fails_when_everything_is_called_severe() -> None:
    outcomes = [_outcome("high", Flag.SEVERE)] * 5 + [
        _outcome("low", Flag.SEVERE, "legitimate")
    ] * 5
    r = Report(outcomes)
    gate = FullReport(dev=r, holdout=r, ablation=r, ablation_all=r).gate()
    assert gate["high_risk_recall"]
    assert not gate["specificity"]
    assert not gate["no_legitimate_high"]


def test_gate_passes_a_perfect_report() -> None:
    outcomes = [_outcome("high", Flag.HIGH)] * 5 + [_outcome("low", Flag.LOW, "legitimate")] * 5
    r = Report(outcomes)
    assert all(FullReport(dev=r, holdout=r, ablation=r, ablation_all=r).gate().values())
    assert GATE["high_risk_recall"] == 0.90


def test_ablation_removes_the_states_profile(kb: KnowledgeBase) -> None:
    from app.evaluate import ablate

    ablated = ablate(kb, "CN")
    assert "CN" not in ablated.countries
    assert all(p.jurisdiction != "CN" for p in ablated.provisions.values())
    assert all("CN" not in g.countries for g in ablated.groups.values())
    case = {
        "id": "t",
        "label": "abusive",
        "expected_level": "high",
        "request": {"notice": {"issuing_country": "CN", "charges": "煽动颠覆国家政权罪"}},
    }
    full, without = evaluate(kb, [case]), evaluate(ablated, [case])
    assert "requesting_state_pattern" in full.outcomes[0].indicators
    assert "requesting_state_pattern" not in without.outcomes[0].indicators


def _names_in_cases() -> set[str]:
    """Person names that appear in the knowledge base's documented cases."""
    data = yaml.safe_load((DATA_DIR / "cases.yaml").read_text(encoding="utf-8"))
    names: set[str] = set()
    for case in data:
        for part in re.split(r"[,;()/]| and ", case["name"]):
            part = part.strip()
            if len(part) >= 6 and " " in part:
                names.add(part.casefold())
    return names


def test_no_vocabulary_entry_names_a_person_or_a_cases_wording(
    cases: list[dict],  # type: ignore[type-arg]
) -> None:
    terms: list[str] = []
    for path in sorted((DATA_DIR / "vocabularies").glob("*.yaml")):
        for record in yaml.safe_load(path.read_text(encoding="utf-8")):
            terms += [t.lstrip("=").casefold() for t in record["terms"]]
    names = _names_in_cases()
    assert names, "the documented cases name people: the check must have something to check"
    for term in terms:
        for name in names:
            assert name not in term, (term, name)
    # A case's own long wording (a phrase of six or more words from its charges or narrative)
    # is not a vocabulary term.
    for term in terms:
        if len(term.split()) >= 6:
            for case in cases:
                notice = case["request"].get("notice") or {}
                text = " ".join([notice.get("charges") or "", case["request"].get("context") or ""])
                assert term not in text.casefold(), (term, case["id"])


def test_evaluation_folder_holds_only_case_files() -> None:
    assert sorted(p.suffix for p in Path(EVAL_DIR).iterdir() if p.is_file()) == [".yaml"] * len(
        list(Path(EVAL_DIR).glob("*.yaml"))
    )
