"""Evaluation of the engine on the labelled set of documented cases (``tests/eval/``).

Names are never part of the inputs, so identity cannot carry the result: only the documented
patterns can. The set is split once, by a hash of each case's id, into ``dev`` (about 60%, the
only part weights may be tuned on) and ``holdout``. The ablation screens every case with its
requesting state's detailed profile removed (its country profile, its provisions and its place
in the targeted groups): what a user gets for a state the knowledge base does not document.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.engine import ScreeningInput, screen
from app.engine.result import Flag
from app.kb.loader import DEFAULT_COUNTRY, SAFE_LOADER, KnowledgeBase, compile_matcher

EVAL_DIR = Path(__file__).resolve().parent.parent / "tests" / "eval"
EVAL_FILE = EVAL_DIR / "cases.yaml"
ORDER = [Flag.LOW, Flag.ELEVATED, Flag.HIGH, Flag.SEVERE]
RANK = {f: i for i, f in enumerate(ORDER)}
LEVELS = ("low", "elevated", "high")  # the three levels cases are labelled with
DEV_SHARE = 60  # percent of cases in the dev split

# The gate: what the holdout split must reach (docs/validation.md).
GATE = {
    "high_risk_recall": 0.90,
    "specificity": 0.85,
    "exact_agreement": 0.75,
    "ablation_recall": 0.80,
}


def split_of(case_id: str) -> str:
    """``dev`` or ``holdout``, fixed by a hash of the id: the same case always lands in the
    same split, whatever else is added."""
    bucket = int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) % 100
    return "dev" if bucket < DEV_SHARE else "holdout"


def three_level(flag: Flag) -> str:
    return "high" if RANK[flag] >= RANK[Flag.HIGH] else flag.value


def expected_level(case: dict[str, Any]) -> str:
    """The case's expected level: given, or derived from the older bounds."""
    if case.get("expected_level"):
        return str(case["expected_level"])
    at_least, at_most = case.get("expected_flag_at_least"), case.get("expected_flag_at_most")
    if case["label"] == "abusive":
        return "high" if at_least in ("high", "severe") else "elevated"
    if case["label"] == "legitimate":
        return "low"
    return "elevated" if at_most not in (None, "low") else "low"


def requesting_state(case: dict[str, Any]) -> str:
    notice = case["request"].get("notice") or {}
    return str(case.get("requesting_state") or notice.get("issuing_country") or "XX")


@dataclass(frozen=True)
class Outcome:
    id: str
    label: str
    state: str
    expected: str
    flag: Flag
    score: int
    indicators: tuple[str, ...]

    @property
    def level(self) -> str:
        return three_level(self.flag)

    @property
    def high_risk(self) -> bool:
        """A case the set expects at 'high' or above."""
        return self.expected == "high"


def _share(part: int, whole: int) -> float | None:
    """A share, or ``None`` for an empty set: a metric over nothing proves nothing, and the
    gate fails on ``None``."""
    return part / whole if whole else None


@dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]

    @property
    def high_risk(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.high_risk]

    @property
    def legitimate(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.label == "legitimate"]

    @property
    def high_risk_recall(self) -> float | None:
        chosen = self.high_risk
        return _share(sum(o.level == "high" for o in chosen), len(chosen))

    @property
    def specificity(self) -> float | None:
        """Legitimate cases flagged ``low``."""
        chosen = self.legitimate
        return _share(sum(o.flag is Flag.LOW for o in chosen), len(chosen))

    @property
    def exact_agreement(self) -> float | None:
        return _share(sum(o.level == o.expected for o in self.outcomes), len(self.outcomes))

    @property
    def legitimate_flagged_high(self) -> list[Outcome]:
        return [o for o in self.legitimate if o.level == "high"]

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.level != o.expected]

    def confusion(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            row = table.setdefault(o.expected, {f.value: 0 for f in ORDER})
            row[o.flag.value] += 1
        return table

    def summary(self) -> dict[str, Any]:
        return {
            "cases": len(self.outcomes),
            "high_risk_recall": self.high_risk_recall,
            "specificity": self.specificity,
            "exact_agreement": self.exact_agreement,
            "legitimate_flagged_high": len(self.legitimate_flagged_high),
        }

    def render(self, title: str, *, misses: bool = True) -> str:
        hr, legit = self.high_risk, self.legitimate
        lines = [
            f"== {title}: {len(self.outcomes)} cases "
            f"({len(hr)} expected high, {len(legit)} legitimate)",
            f"  {'expected':<10}" + "".join(f"{f.value:>10}" for f in ORDER),
        ]
        for level in LEVELS:
            row = self.confusion().get(level)
            if row:
                lines.append(f"  {level:<10}" + "".join(f"{row[f.value]:>10}" for f in ORDER))
        lines += [
            f"  high-risk recall (expected high, flagged high or severe): "
            f"{_fmt(self.high_risk_recall)} ({sum(o.level == 'high' for o in hr)}/{len(hr)})",
            f"  specificity (legitimate flagged low): {_fmt(self.specificity)} "
            f"({sum(o.flag is Flag.LOW for o in legit)}/{len(legit)})",
            f"  legitimate flagged high or severe: {len(self.legitimate_flagged_high)}",
            f"  exact three-level agreement: {_fmt(self.exact_agreement)} "
            f"({len(self.outcomes) - len(self.misses)}/{len(self.outcomes)})",
        ]
        if misses:
            lines.append("  misses:" if self.misses else "  misses: none")
            for o in self.misses:
                lines.append(
                    f"    {o.id} [{o.label}, {o.state}] expected {o.expected}, "
                    f"flag={o.flag.value} score={o.score} fired={','.join(o.indicators)}"
                )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a (no cases)" if value is None else f"{value:.3f}"


def load_cases(path: Path | None = None) -> list[dict[str, Any]]:
    """Every case in ``path`` (a file) or in every ``*.yaml`` of the evaluation folder."""
    paths = (
        [path] if path is not None and path.is_file() else sorted((path or EVAL_DIR).glob("*.yaml"))
    )
    cases: list[dict[str, Any]] = []
    for p in paths:
        with p.open(encoding="utf-8") as fh:
            cases += yaml.load(fh, Loader=SAFE_LOADER) or []  # noqa: S506 - a safe loader
    return cases


def ablate(kb: KnowledgeBase, iso2: str) -> KnowledgeBase:
    """The release as a user from an undocumented state sees it: ``iso2``'s country profile,
    its provisions and its place in the targeted groups removed."""
    if iso2 not in kb.countries or iso2 == DEFAULT_COUNTRY:
        return kb
    provisions = {k: p for k, p in kb.provisions.items() if p.jurisdiction != iso2}
    groups = {
        k: g.model_copy(update={"countries": [c for c in g.countries if c != iso2]})
        for k, g in kb.groups.items()
    }
    return dataclasses.replace(
        kb,
        countries={k: c for k, c in kb.countries.items() if k != iso2},
        provisions=provisions,
        groups=groups,
        matcher=compile_matcher(
            groups, kb.profile_tags, kb.offence_categories, provisions, kb.cues, kb.exposure_roles
        ),
    )


def _screen(kb: KnowledgeBase, case: dict[str, Any]) -> Outcome:
    request = ScreeningInput.model_validate(case["request"])
    if request.subject is not None and (request.subject.full_name or request.subject.aliases):
        raise ValueError(f"{case['id']}: evaluation inputs must not carry names")
    result = screen(request, kb)
    return Outcome(
        id=case["id"],
        label=case["label"],
        state=requesting_state(case),
        expected=expected_level(case),
        flag=result.flag,
        score=result.score,
        indicators=tuple(i.code for i in result.indicators + result.counter_indicators),
    )


def evaluate(kb: KnowledgeBase, cases: Iterable[dict[str, Any]]) -> Report:
    return Report([_screen(kb, c) for c in cases])


def evaluate_ablation(kb: KnowledgeBase, cases: Iterable[dict[str, Any]]) -> Report:
    """Every case screened with its own requesting state's detailed profile removed."""
    ablated: dict[str, KnowledgeBase] = {}
    outcomes = []
    for case in cases:
        state = requesting_state(case)
        if state not in ablated:
            ablated[state] = ablate(kb, state)
        outcomes.append(_screen(ablated[state], case))
    return Report(outcomes)


@dataclass(frozen=True)
class FullReport:
    dev: Report
    holdout: Report
    ablation: Report  # holdout cases, own state's profile removed
    ablation_all: Report  # every case, own state's profile removed

    def gate(self) -> dict[str, bool]:
        """Each holdout target and whether it is met; an empty set never meets one."""
        h, a = self.holdout, self.ablation

        def at_least(value: float | None, target: float) -> bool:
            return value is not None and value >= target

        return {
            "high_risk_recall": at_least(h.high_risk_recall, GATE["high_risk_recall"]),
            "specificity": at_least(h.specificity, GATE["specificity"]),
            "no_legitimate_high": bool(h.legitimate) and not h.legitimate_flagged_high,
            "exact_agreement": at_least(h.exact_agreement, GATE["exact_agreement"]),
            "ablation_recall": at_least(a.high_risk_recall, GATE["ablation_recall"]),
        }

    def by_state(self) -> list[tuple[str, int, float | None, float | None]]:
        """Leave-one-state-out: each state's cases, screened with that state's profile
        removed: (state, cases, recall, specificity)."""
        states = sorted({o.state for o in self.ablation_all.outcomes})
        rows = []
        for state in states:
            part = Report([o for o in self.ablation_all.outcomes if o.state == state])
            rows.append((state, len(part.outcomes), part.high_risk_recall, part.specificity))
        return rows

    def render(self) -> str:
        lines = [
            self.dev.render("dev (tuned on)"),
            "",
            self.holdout.render("holdout (never tuned on)"),
            "",
            self.ablation.render("ablation, holdout: own state's detailed profile removed"),
            "",
            self.ablation_all.render(
                "ablation, all cases: own state's detailed profile removed", misses=False
            ),
            "",
            "== leave-one-state-out (each state's cases, its profile removed)",
            f"  {'state':<6}{'cases':>6}{'recall':>10}{'specificity':>13}",
        ]
        for state, n, recall, spec in self.by_state():
            r = "-" if recall is None else f"{recall:.2f}"
            s = "-" if spec is None else f"{spec:.2f}"
            lines.append(f"  {state:<6}{n:>6}{r:>10}{s:>13}")
        lines += ["", "== gate (holdout)"]
        for name, ok in self.gate().items():
            lines.append(f"  {name}: {'met' if ok else 'NOT met'}")
        return "\n".join(lines)


def evaluate_all(kb: KnowledgeBase, cases: list[dict[str, Any]]) -> FullReport:
    dev = [c for c in cases if split_of(c["id"]) == "dev"]
    holdout = [c for c in cases if split_of(c["id"]) == "holdout"]
    return FullReport(
        dev=evaluate(kb, dev),
        holdout=evaluate(kb, holdout),
        ablation=evaluate_ablation(kb, holdout),
        ablation_all=evaluate_ablation(kb, cases),
    )
