"""The matcher's negation check is linear (F6): a text of one repeated negated phrase costs
time in proportion to its length, and the nearest-cue rule agrees with the rule it replaced
(every cue within the window, no clause boundary between) on generated texts."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from types import FrameType

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


def _lines_executed(call: Callable[[], object]) -> int:
    """Python lines executed by ``call``: a count of work that does not depend on the machine's
    speed or load (the automaton itself runs in C and is not counted)."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


def test_a_repeated_negated_phrase_is_linear() -> None:
    matcher = Matcher(ENTRIES)
    work = {}
    for repeats in (500, 2_000):
        text = "不是成员" * repeats
        hits = matcher.find(text)
        assert len(hits) == repeats
        assert all(h.negated for h in hits)
        work[repeats] = _lines_executed(lambda text=text: matcher.find(text))
    ratio = work[2_000] / work[500]
    print(
        f"SECMETRIC negation_linear lines_500={work[500]} lines_2000={work[2_000]} "
        f"ratio={ratio:.2f}"
    )
    # Four times the text: about four times the work; the quadratic check did about sixteen.
    assert ratio < 6


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
