"""Text normalisation shared by the knowledge base's matchers and the engine.

``normalise`` makes user text and vocabulary terms comparable across scripts: NFKC/NFKD
compatibility folding, casefolding, diacritics and Arabic vowel marks removed, Turkish dotless
i, Cyrillic yo and Arabic letter variants folded, punctuation reduced to single spaces, and
clause punctuation kept as one marker (``¦``) so negation cannot reach across a clause. Every
step is a C-level string or regex operation: normalising a 1,000-character text costs a few
microseconds.
"""

from __future__ import annotations

import re
import unicodedata

CLAUSE = "¦"
_CLAUSE_PUNCT = re.compile(r"[.,;:!?\n\r。，；：！？،؛؟]+")
_DECIMAL = re.compile(r"(?<=\d)[.,](?=\d)")  # "282.2" is an article number, not a clause end
_HAS_DECIMAL = re.compile(r"\d[.,]\d")
_COMBINING = re.compile(
    r"[\u0300-\u036f\u0483-\u0489\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]"
)
_NON_WORD = re.compile(r"[^\w¦ ]+")  # spaces are collapsed afterwards, faster than here
_FOLD_MAP = {
    "ı": "i",
    "ё": "е",
    "ß": "ss",
    "أ": "ا",
    "إ": "ا",
    "آ": "ا",
    "ٱ": "ا",
    "ى": "ي",
    "ة": "ه",
    "ؤ": "و",
    "ئ": "ي",
    "_": " ",
}
# str.translate with a dict costs ~50 ns a character; a regex finds the rare letters in C.
_FOLD = re.compile("[" + "".join(_FOLD_MAP) + "]")


def _fold(match: re.Match[str]) -> str:
    return _FOLD_MAP[match.group()]


# CJK ideographs and kana: matched without word boundaries (no spaces between words).
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def normalise(text: str) -> str:
    """Comparable form of ``text``; the same function is applied to terms and inputs."""
    folded = text.casefold()
    if not folded.isascii():  # ASCII has nothing to decompose, fold or strip
        folded = _FOLD.sub(_fold, unicodedata.normalize("NFKD", folded))
        folded = _COMBINING.sub("", folded)
    if _HAS_DECIMAL.search(folded):
        folded = _DECIMAL.sub(" ", folded)
    folded = _CLAUSE_PUNCT.sub(f" {CLAUSE} ", folded)
    # Anything else becomes a space; runs of white space become one space.
    return " ".join(_NON_WORD.sub(" ", folded.replace("_", " ")).split())


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


# Words (letters and digits, not the underscore) and runs of clause punctuation: what
# ``normalise`` keeps, each token separated from the next by one space.
_TOKENS = re.compile(r"[^\W_]+|[.,;:!?\n\r。，；：！？،؛؟]+")


def origins(text: str) -> list[int] | None:
    """For each character of ``normalise(text)``, the index of the character of ``text`` it
    came from, so a match can be quoted as it was typed. ``None`` in the rare case where the
    walk does not reproduce ``normalise`` exactly."""
    if text.isascii():  # casefolding ASCII keeps every character in place
        folded = text.lower()
        index: list[int] | range = range(len(text))
    else:
        parts: list[str] = []
        where_from: list[int] = []
        for k, ch in enumerate(text):
            f = ch.casefold()
            if not f.isascii():
                f = _COMBINING.sub("", _FOLD.sub(_fold, unicodedata.normalize("NFKD", f)))
            parts.append(f)
            where_from += [k] * len(f)
        folded, index = "".join(parts), where_from
    if _HAS_DECIMAL.search(folded):
        folded = _DECIMAL.sub(" ", folded)  # one character for one: positions are kept
    out: list[str] = []
    where: list[int] = []
    for m in _TOKENS.finditer(folded):
        a, b = m.span()
        if out:
            out.append(" ")
            where.append(index[a])
        if folded[a] in ".,;:!?\n\r。，；：！？،؛؟":
            out.append(CLAUSE)
            where.append(index[a])
        else:
            out.append(folded[a:b])
            where.extend(index[a:b])
    joined = "".join(out)
    return where if len(joined) == len(where) and joined == normalise(text) else None
