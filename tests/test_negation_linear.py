"""The matcher's negation check is linear (F6): a text of one repeated negated phrase costs
time in proportion to its length, and the nearest-cue rule agrees with the rule it replaced
(every cue within the window, no clause boundary between) on generated texts."""

from __future__ import annotations

import random
import time

from app.kb.compiled import (
    NEGATION,
    NEGATION_WINDOW,
    POST_NEGATION,
    POST_NEGATION_WINDOW,
    Entry,
    Matcher,
)
from app.kb.text import CLAUSE, normalise

ENTRIES = [
    Entry("cue", NEGATION, "不是"),
    Entry("cue", NEGATION, "not a member of"),
    Entry("cue", POST_NEGATION, "değil"),
    Entry("group", "g1", "成员"),
    Entry("group", "g2", "party"),
    Entry("tag", "t1", "journalist"),
]


def _reference(
    norm: str, start: int, stop: int, negs: list[tuple[int, int]], posts: list[tuple[int, int]]
) -> bool:
    """The rule as it was written before: any cue within the window, no boundary between."""
    before = any(
        n_stop <= start and start - n_stop <= NEGATION_WINDOW and CLAUSE not in norm[n_stop:start]
        for _, n_stop in negs
    )
    return before or any(
        n_start >= stop
        and n_start - stop <= POST_NEGATION_WINDOW
        and CLAUSE not in norm[stop:n_start]
        for n_start, _ in posts
    )


def test_a_repeated_negated_phrase_is_linear() -> None:
    matcher = Matcher(ENTRIES)
    timings = {}
    for repeats in (2_500, 10_000):
        text = "不是成员" * repeats
        best = float("inf")
        for _ in range(3):  # the best of three: another process may share the cores
            start = time.perf_counter()
            hits = matcher.find(text)
            best = min(best, time.perf_counter() - start)
        timings[repeats] = best
        assert len(hits) == repeats
        assert all(h.negated for h in hits)
    ratio = timings[10_000] / timings[2_500]
    print(
        f"SECMETRIC negation_linear chars=40000 seconds={timings[10_000]:.3f} "
        f"chars=10000 seconds={timings[2_500]:.3f} ratio_for_4x={ratio:.1f}"
    )
    assert timings[10_000] < 1.0  # 9.8 s with the quadratic check
    assert ratio < 10  # quadratic would be about 16


def test_the_nearest_cue_rule_agrees_with_the_old_rule() -> None:
    matcher = Matcher(ENTRIES)
    words = [
        "不是",
        "成员",
        "not a member of",
        "party",
        "journalist",
        "değil",
        "x",
        "yy",
        ".",
        ";",
        "zzzzzzzzzz",
    ]
    rng = random.Random(16)
    checked = 0
    for _ in range(400):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        hits = matcher.find(text)
        norm = " " + normalise(text) + " "
        negs = [(h0, h1) for h0, h1 in _cues(norm, ["不是", " not a member of"])]
        posts = [(h0, h1) for h0, h1 in _cues(norm, [" değil"])]
        for h in hits:
            assert h.negated == _reference(norm, h.start + 1, h.end + 1, negs, posts), (text, h)
            checked += 1
    assert checked > 500


def _cues(norm: str, cues: list[str]) -> list[tuple[int, int]]:
    found = []
    for cue in cues:
        key = normalise(cue.strip())
        key = key if cue.strip() == "不是" else " " + key
        at = norm.find(key)
        while at != -1:
            start = at + 1 if key.startswith(" ") else at  # as the automaton reports it
            found.append((start, at + len(key)))
            at = norm.find(key, at + 1)
    return sorted(found, key=lambda s: s[1])
