"""Engine benchmark: median time per screening on the shipped knowledge base, and on a copy
made 10x larger with synthetic vocabulary, provisions and cases, measured in the same run.

    .venv/bin/python bench/engine_bench.py [--rounds 7] [--repeat 20]

Inputs are the evaluation set's requests (realistic lengths, several languages).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from app.engine import ScreeningInput, screen
from app.evaluate import load_cases
from app.kb.loader import DATA_DIR, KnowledgeBase, load

SYLLABLES = ["ka", "lo", "mir", "tes", "vun", "dra", "pel", "sor", "qui", "zen", "bax", "tor"]


def _word(i: int, j: int) -> str:
    parts = [SYLLABLES[(i * 7 + j * 3 + k) % len(SYLLABLES)] for k in range(4)]
    return "".join(parts) + f"{i}x{j}"


def inflate(factor: int) -> Path:
    """A copy of the release with (factor - 1) synthetic variants of every vocabulary record,
    provision and case, each citing real sources so the release still validates."""
    root = Path(tempfile.mkdtemp(prefix="kb-x")) / "data"
    shutil.copytree(DATA_DIR, root)
    for rel, key in [
        ("vocabularies/groups.yaml", "id"),
        ("vocabularies/profile_tags.yaml", "id"),
        ("vocabularies/offence_categories.yaml", "id"),
        ("cases.yaml", "id"),
    ]:
        path = root / rel
        records = yaml.safe_load(path.read_text(encoding="utf-8"))
        extra = []
        for n in range(1, factor):
            for i, rec in enumerate(records):
                copy = dict(rec)
                copy[key] = f"{rec[key]}-syn{n}"
                if "terms" in copy:
                    copy["terms"] = [_word(i, n * 100 + j) for j in range(len(rec["terms"]))]
                if rel == "cases.yaml":
                    copy["groups"], copy["profile_tags"] = [], []
                extra.append(copy)
        path.write_text(yaml.safe_dump(records + extra, allow_unicode=True), encoding="utf-8")
    for path in sorted((root / "provisions").glob("*.yaml")):
        records = yaml.safe_load(path.read_text(encoding="utf-8"))
        extra = []
        for n in range(1, factor):
            for i, rec in enumerate(records):
                copy = dict(rec)
                copy["id"] = f"{rec['id']}-syn{n}"
                copy["charge_terms"] = [
                    _word(i, n * 1000 + j) for j in range(len(rec["charge_terms"]))
                ]
                extra.append(copy)
        path.write_text(yaml.safe_dump(records + extra, allow_unicode=True), encoding="utf-8")
    return root


def durations(kb: KnowledgeBase, requests: list[ScreeningInput], repeat: int) -> list[float]:
    """Seconds for each single screening."""
    out = []
    clock = time.perf_counter
    for _ in range(repeat):
        for request in requests:
            start = clock()
            screen(request, kb)
            out.append(clock() - start)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args()

    requests = [ScreeningInput.model_validate(c["request"]) for c in load_cases()]
    base = load()
    big = load(inflate(args.factor))
    for kb in (base, big):  # warm-up
        durations(kb, requests, 2)
    base_t: list[float] = []
    big_t: list[float] = []
    for _ in range(args.rounds):  # interleaved so machine noise hits both alike
        base_t += durations(base, requests, args.repeat)
        big_t += durations(big, requests, args.repeat)
    b, g = statistics.median(base_t), statistics.median(big_t)
    print(
        json.dumps(
            {
                "requests": len(requests),
                "rounds": args.rounds,
                "screenings_per_round": args.repeat * len(requests),
                "kb_terms": base.matcher.size,
                "kb_terms_inflated": big.matcher.size,
                "median_us_shipped": round(b * 1e6, 1),
                "p90_us_shipped": round(_pct(base_t, 0.9) * 1e6, 1),
                "median_us_inflated": round(g * 1e6, 1),
                "p90_us_inflated": round(_pct(big_t, 0.9) * 1e6, 1),
                "ratio_inflated_to_shipped": round(g / b, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
