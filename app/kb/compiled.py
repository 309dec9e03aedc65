"""The knowledge base's vocabularies compiled into one Aho-Corasick automaton.

Every term (group names, profile words, offence words, provision wordings, cue words) is
normalised once at load and added to a single automaton, so matching a text costs one pass
over it whatever the number of terms. Terms in alphabetic scripts match at a word start (a
prefix: "journalist" also finds "journalists", "экстремист" finds "экстремистской"); CJK terms
match anywhere; a term written ``=word`` matches the whole word only ("=coup" finds "coup",
not "couple"). Each hit knows whether a negation cue governs it ("not a member of ...",
"... üyesi değil", "不是 ...").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import ahocorasick

from app.kb.text import CLAUSE, has_cjk, normalise

NEGATION = "negation"  # cue set: words that negate what follows
POST_NEGATION = "post_negation"  # cue set: words that negate what precedes (Turkish değil)
NEGATION_WINDOW = 32  # characters between a negation cue and the term it governs
POST_NEGATION_WINDOW = 24


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # group | tag | category | provision | cue
    ref: str  # the id in its kind
    term: str  # the term as written in the knowledge base


class Hit(NamedTuple):  # a tuple: a screening builds dozens, and frozen dataclasses cost more
    kind: str
    ref: str
    term: str
    matched: str  # the matched span of the normalised text
    start: int
    end: int
    negated: bool
    clause: int  # index of the clause (text between clause punctuation) the hit stands in


class Matcher:
    """Finds every knowledge-base term in a text.

    One automaton serves all kinds; a field that only reads some kinds (the narrative reads
    groups and cues, not offence words) gets its own automaton over just those, built on first
    use, so it never pays for matches it would throw away.
    """

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._table: dict[str, list[Entry]] = {}
        for entry in entries:
            norm = normalise(entry.term)
            if not norm:
                continue
            key = norm if has_cjk(norm) else " " + norm
            if entry.term.startswith("=") and not has_cjk(norm):
                key += " "  # the text is padded with spaces, so a word end always has one
            self._table.setdefault(key, []).append(entry)
        self.size = len(self._table)
        self._automata: dict[frozenset[str] | None, ahocorasick.Automaton | None] = {}
        self._automaton_for(None)

    def _automaton_for(self, kinds: frozenset[str] | None) -> ahocorasick.Automaton | None:
        if kinds in self._automata:
            return self._automata[kinds]
        automaton = ahocorasick.Automaton()
        words = 0
        for key, found in self._table.items():
            # Stored per key: where the match starts relative to its end, the negation role of
            # the key, and the entries it stands for (negation cues are not reported as hits).
            role = 0
            if any(e.kind == "cue" and e.ref == NEGATION for e in found):
                role = 1
            elif any(e.kind == "cue" and e.ref == POST_NEGATION for e in found):
                role = 2
            reported = tuple(
                e
                for e in found
                if not (e.kind == "cue" and e.ref in (NEGATION, POST_NEGATION))
                and (kinds is None or e.kind in kinds)
            )
            if role == 0 and not reported:
                continue
            # Where the match starts and stops relative to the automaton's end index: a leading
            # space is not part of the match, nor is the trailing one of a whole-word key.
            lead = 1 if key.startswith(" ") else 0
            trail = 1 if len(key) > 1 and key.endswith(" ") else 0
            automaton.add_word(key, (len(key) - 1 - lead, trail, role, reported))
            words += 1
        result = None
        if words:
            automaton.make_automaton()
            result = automaton
        self._automata[kinds] = result  # a racing thread builds the same automaton: harmless
        return result

    def find(self, text: str, kinds: frozenset[str] | None = None) -> list[Hit]:
        """Every term in ``text`` (of the given kinds, or all) with its span in the
        normalised text and whether a negation governs it."""
        return self.scan(text, kinds)[0]

    def scan(self, text: str, kinds: frozenset[str] | None = None) -> tuple[list[Hit], str]:
        """``find``, and the normalised text the spans refer to."""
        automaton = self._automaton_for(kinds)
        if not text or automaton is None:
            return [], normalise(text) if text else ""
        norm = " " + normalise(text) + " "
        spans: list[tuple[int, int, tuple[Entry, ...]]] = []
        negations: list[tuple[int, int]] = []
        post_negations: list[tuple[int, int]] = []
        for end, (offset, trail, role, reported) in automaton.iter(norm):
            start, stop = end - offset, end + 1 - trail
            if role == 1:
                negations.append((start, stop))
            elif role == 2:
                post_negations.append((start, stop))
            if reported:
                spans.append((start, stop, reported))
        hits = []
        check = bool(negations or post_negations)
        clauses = []
        at = norm.find(CLAUSE)
        while at != -1:
            clauses.append(at)
            at = norm.find(CLAUSE, at + 1)
        # Negation cues sorted by where they end (before) and start (after), so each hit looks
        # at its nearest cue on each side only: linear in the hits, not hits x cues (a text of
        # one repeated negated phrase made this quadratic: 1-1.5 s for 142 KB).
        neg_stops = sorted(n_stop for _, n_stop in negations)
        post_starts = sorted(n_start for n_start, _ in post_negations)
        for start, stop, reported in spans:
            negated = check and _negated(start, stop, neg_stops, post_starts, clauses)
            matched = norm[start:stop]
            clause = bisect.bisect(clauses, start) if clauses else 0
            for e in reported:
                hits.append(
                    Hit(e.kind, e.ref, e.term, matched, start - 1, stop - 1, negated, clause)
                )
        return hits, norm[1:-1]


def _negated(
    start: int, stop: int, neg_stops: list[int], post_starts: list[int], clauses: list[int]
) -> bool:
    """Whether a cue governs the span ``start:stop``: a negation ending at most
    NEGATION_WINDOW characters before it, or a post-negation starting at most
    POST_NEGATION_WINDOW after it, with no clause boundary between. The nearest cue on each
    side decides: a farther one is farther away and has every boundary the nearer one has."""
    i = bisect.bisect_right(neg_stops, start)
    if i:
        n_stop = neg_stops[i - 1]
        if start - n_stop <= NEGATION_WINDOW and not _boundary(clauses, n_stop, start):
            return True
    j = bisect.bisect_left(post_starts, stop)
    if j < len(post_starts):
        n_start = post_starts[j]
        if n_start - stop <= POST_NEGATION_WINDOW and not _boundary(clauses, stop, n_start):
            return True
    return False


def _boundary(clauses: list[int], lo: int, hi: int) -> bool:
    """Whether a clause boundary stands at a position in ``lo:hi``."""
    k = bisect.bisect_left(clauses, lo)
    return k < len(clauses) and clauses[k] < hi
