"""Normalisation: one comparable form across scripts, the same for terms and inputs."""

from __future__ import annotations

import pytest

from app.kb.text import CLAUSE, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Gülen (FETÖ/PDY)", "gulen feto pdy"),
        ("IŞIK", "isik"),
        ("Ёлка", "елка"),
        ("الإخوان المسلمين", "الاخوان المسلمين"),
        ("Ст. 282.2 УК РФ", f"ст {CLAUSE} 282 2 ук рф"),
        ("組織、利用邪教", "組織 利用邪教"),
        ("a_b", "a b"),
        ("a_b ü", "a b u"),
        ("  many   spaces\n\tand\u00a0nbsp ", f"many spaces {CLAUSE} and nbsp"),
        ("1,000 people; killed", f"1 000 people {CLAUSE} killed"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_a_term_matches_inside_any_text_that_contains_it() -> None:
    # Characters are normalised one by one, so a term's form is found in any text's form.
    for term, text in [
        ("gulen", "Ünlü Gülen hareketi"),
        ("hizb ut tahrir", "HIZB-UT-TAHRIR!"),
        ("экстремист", "экстремистской организации Ёж"),
    ]:
        assert normalise(term) in normalise(text)
