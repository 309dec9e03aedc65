"""The engine against an earlier revision, on the same inputs, in the same run.

    .venv/bin/python bench/engine_compare.py --baseline REV [--runs 3] [--rounds 5] [--repeat 5]

Checks REV out into a temporary git worktree, gives it the current evaluation cases (as one
``tests/eval/cases.yaml``, the file older revisions read), then runs ``bench/engine_bench.py``
in each tree in turn, ``--runs`` times, and prints each run's median per screening and the
ratio of the medians (current / baseline). Alternating the two keeps a noisy machine fair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _median_us(tree: Path, rounds: int, repeat: int) -> float:
    out = subprocess.run(
        [sys.executable, "bench/engine_bench.py", "--rounds", str(rounds), "--repeat", str(repeat)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out)["median_us_shipped"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    cases: list[object] = []
    for path in sorted((ROOT / "tests" / "eval").glob("*.yaml")):
        cases += yaml.safe_load(path.read_text(encoding="utf-8")) or []
    with tempfile.TemporaryDirectory(prefix="engine-baseline-") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for old in (base / "tests" / "eval").glob("*.yaml"):
                old.unlink()
            (base / "tests" / "eval" / "cases.yaml").write_text(
                yaml.safe_dump(cases, allow_unicode=True), encoding="utf-8"
            )
            baseline, current = [], []
            for _ in range(args.runs):
                baseline.append(_median_us(base, args.rounds, args.repeat))
                current.append(_median_us(ROOT, args.rounds, args.repeat))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False
            )
    ratio = statistics.median(current) / statistics.median(baseline)
    print(
        json.dumps(
            {
                "cases": len(cases),
                "baseline": args.baseline,
                "baseline_median_us": baseline,
                "current_median_us": current,
                "ratio_of_medians": round(ratio, 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
