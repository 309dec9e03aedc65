"""RPD Article 83's family and behavioural-norm exclusions in every supported language, and
protest offences that allege no victim."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import ScreeningInput, screen
from app.engine.result import ScreeningResult
from app.kb.loader import KnowledgeBase


def run(kb: KnowledgeBase, charges: str, **notice: Any) -> ScreeningResult:
    body = {
        "subject": {"occupation": "student"},
        "notice": {"type": "red_notice", "issuing_country": "SA", "charges": charges, **notice},
    }
    return screen(ScreeningInput.model_validate(body), kb)


# General wordings, one family matter and one behavioural norm per language.
FAMILY = {
    "en": "disobedience to parents and leaving home without permission",
    "ru": "неповиновение родителям и самовольный уход из дома",
    "zh": "违抗父母，擅自离家",
    "tr": "anne babaya itaatsizlik",
    "ar": "عقوق الوالدين والتغيب عن المنزل",
    "ar-latin": "uquq (disobedience to parents)",
    "fr": "désobéissance aux parents",
    "es": "desobediencia a los padres",
    "en-guardian": "disobeying her guardian; guardianship case",
}
NORMS = {
    "en": "adultery; breach of the dress code",
    "ru": "прелюбодеяние",
    "zh": "叛教",
    "tr": "dinden dönme",
    "ar": "خلع الحجاب",
    "fr": "apostasie",
    "es": "apostasía",
    "en-honour": "damage to honour",
}


@pytest.mark.parametrize("charges", [*FAMILY.values(), *NORMS.values()], ids=[*FAMILY, *NORMS])
def test_family_and_norm_offences_are_excluded_from_red_notices(
    kb: KnowledgeBase, charges: str
) -> None:
    result = run(kb, charges)
    assert "charge_rpd_excluded_category" in {i.code for i in result.indicators}
    (ground,) = [g for g in result.challenge_grounds if g.basis == "rpd_article_83"]
    assert ground.status.value == "applies"
    assert any("Article 83(1)(b)" in e for e in ground.establish)


def test_an_honour_killing_is_not_an_excluded_honour_offence(kb: KnowledgeBase) -> None:
    result = run(kb, "murder of his sister in the name of family honour")
    assert "charge_rpd_excluded_category" not in {i.code for i in result.indicators}


@pytest.mark.parametrize(
    "charges", ["arson of a police vehicle", "damage to property", "поджог автомобиля"]
)
def test_damage_with_no_alleged_victim_fires_no_victims_counter(
    kb: KnowledgeBase, charges: str
) -> None:
    result = run(kb, charges, issuing_country="BH")
    assert not result.counter_indicators


def test_arson_that_kills_still_alleges_victims(kb: KnowledgeBase) -> None:
    result = run(kb, "arson of a house that killed two people", issuing_country="BH")
    assert [c.code for c in result.counter_indicators] == ["ordinary_crime_with_victims"]


@pytest.mark.parametrize(
    "charges",
    ["illegal gathering", "rioting", "arson of a police vehicle during a protest"],
)
def test_assembly_offences_are_their_own_category(kb: KnowledgeBase, charges: str) -> None:
    result = run(kb, charges, issuing_country="BH")
    assert "charge_assembly_protest" in {i.code for i in result.indicators}
    assert not result.counter_indicators
