"""Evaluation of the engine on the labelled set of documented cases (``tests/eval/``).

Names are never part of the inputs, so identity cannot carry the result: only the documented
patterns can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.engine import ScreeningInput, screen
from app.engine.result import Flag
from app.kb.loader import KnowledgeBase

EVAL_FILE = Path(__file__).resolve().parent.parent / "tests" / "eval" / "cases.yaml"
ORDER = [Flag.LOW, Flag.ELEVATED, Flag.HIGH, Flag.SEVERE]
RANK = {f: i for i, f in enumerate(ORDER)}


@dataclass(frozen=True)
class Outcome:
    id: str
    label: str
    flag: Flag
    score: int
    at_least: Flag | None
    at_most: Flag | None
    indicators: tuple[str, ...]

    @property
    def within_bounds(self) -> bool:
        low_ok = self.at_least is None or RANK[self.flag] >= RANK[self.at_least]
        high_ok = self.at_most is None or RANK[self.flag] <= RANK[self.at_most]
        return low_ok and high_ok

    @property
    def high_risk(self) -> bool:
        """A case the set expects at 'high' or above."""
        return self.at_least is not None and RANK[self.at_least] >= RANK[Flag.HIGH]


@dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]

    def _share(self, chosen: list[Outcome], ok: list[Outcome]) -> float:
        return len(ok) / len(chosen) if chosen else 1.0

    @property
    def high_risk_recall(self) -> float:
        chosen = [o for o in self.outcomes if o.high_risk]
        return self._share(chosen, [o for o in chosen if RANK[o.flag] >= RANK[Flag.HIGH]])

    @property
    def abusive_recall_elevated(self) -> float:
        chosen = [o for o in self.outcomes if o.label == "abusive"]
        return self._share(chosen, [o for o in chosen if RANK[o.flag] >= RANK[Flag.ELEVATED]])

    @property
    def low_risk(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.label == "legitimate"]

    @property
    def low_risk_specificity(self) -> float:
        chosen = self.low_risk
        return self._share(chosen, [o for o in chosen if RANK[o.flag] <= RANK[Flag.ELEVATED]])

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.within_bounds]

    def confusion(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            row = table.setdefault(o.label, {f.value: 0 for f in ORDER})
            row[o.flag.value] += 1
        return table

    def render(self) -> str:
        lines = [
            f"cases: {len(self.outcomes)}",
            "",
            "confusion (label x flag):",
            f"  {'':<12}" + "".join(f"{f.value:>10}" for f in ORDER),
        ]
        for label, row in sorted(self.confusion().items()):
            lines.append(f"  {label:<12}" + "".join(f"{row[f.value]:>10}" for f in ORDER))
        hr = [o for o in self.outcomes if o.high_risk]
        lines += [
            "",
            f"high-risk recall (expected >= high, flagged >= high): {self.high_risk_recall:.3f} "
            f"({sum(RANK[o.flag] >= 2 for o in hr)}/{len(hr)})",
            f"abusive flagged elevated or above: {self.abusive_recall_elevated:.3f}",
            f"low-risk specificity (legitimate flagged low or elevated): "
            f"{self.low_risk_specificity:.3f} ({len(self.low_risk)} cases)",
            f"within expected bounds: {len(self.outcomes) - len(self.misses)}/{len(self.outcomes)}",
            "",
            "misses:" if self.misses else "misses: none",
        ]
        for o in self.misses:
            bounds = f">={o.at_least.value}" if o.at_least else ""
            bounds += f" <={o.at_most.value}" if o.at_most else ""
            lines.append(
                f"  {o.id} [{o.label}] flag={o.flag.value} score={o.score} "
                f"expected {bounds.strip()} fired={','.join(o.indicators)}"
            )
        return "\n".join(lines)


def load_cases(path: Path = EVAL_FILE) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        cases: list[dict[str, Any]] = yaml.safe_load(fh)
    return cases


def evaluate(kb: KnowledgeBase, cases: list[dict[str, Any]]) -> Report:
    outcomes = []
    for case in cases:
        request = ScreeningInput.model_validate(case["request"])
        if request.subject is not None and (request.subject.full_name or request.subject.aliases):
            raise ValueError(f"{case['id']}: evaluation inputs must not carry names")
        result = screen(request, kb)
        at_least = case.get("expected_flag_at_least")
        at_most = case.get("expected_flag_at_most")
        outcomes.append(
            Outcome(
                id=case["id"],
                label=case["label"],
                flag=result.flag,
                score=result.score,
                at_least=Flag(at_least) if at_least else None,
                at_most=Flag(at_most) if at_most else None,
                indicators=tuple(i.code for i in result.indicators + result.counter_indicators),
            )
        )
    return Report(outcomes)
