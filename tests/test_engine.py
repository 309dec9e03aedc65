"""Golden cases for every indicator, the scoring rules and the engine's guarantees."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import ScreeningInput, screen
from app.engine.result import Flag, ScreeningResult
from app.kb.loader import KnowledgeBase

RANK = {Flag.LOW: 0, Flag.ELEVATED: 1, Flag.HIGH: 2, Flag.SEVERE: 3}


def run(kb: KnowledgeBase, **body: Any) -> ScreeningResult:
    return screen(ScreeningInput.model_validate(body), kb)


def codes(result: ScreeningResult) -> set[str]:
    return {i.code for i in result.indicators + result.counter_indicators}


# (name, request body, indicator that must fire, indicator that must not fire)
GOLDEN: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    (
        "state pattern",
        {"notice": {"issuing_country": "CN"}},
        "requesting_state_pattern",
        "no_documented_state_pattern",
    ),
    (
        "undocumented state",
        {"notice": {"issuing_country": "FR"}},
        "no_documented_state_pattern",
        "requesting_state_pattern",
    ),
    (
        "political charge",
        {"notice": {"issuing_country": "CN", "charges": "Inciting subversion of state power"}},
        "charge_political_offence",
        None,
    ),
    (
        "political charge in Chinese",
        {"notice": {"issuing_country": "CN", "charges": "煽动颠覆国家政权罪"}},
        "charge_political_offence",
        None,
    ),
    (
        "expression charge in Russian",
        {
            "notice": {
                "issuing_country": "RU",
                "charges": "Публичное распространение заведомо ложной информации об использовании "
                "Вооруженных Сил",
            }
        },
        "charge_political_offence",
        None,
    ),
    (
        "inflected Russian charge",
        {
            "notice": {
                "issuing_country": "TJ",
                "charges": "Публичные призывы к насильственному изменению конституционного строя",
            }
        },
        "charge_political_offence",
        None,
    ),
    (
        "unpaid bank loan is a private dispute",
        {"notice": {"issuing_country": "AE", "charges": "Non-payment of a bank loan"}},
        "charge_rpd_excluded_category",
        None,
    ),
    (
        "running an unregistered NGO is administrative",
        {"notice": {"issuing_country": "EG", "charges": "Operating an unregistered NGO"}},
        "charge_rpd_excluded_category",
        None,
    ),
    (
        "INTERPOL cancelled an earlier notice",
        {
            "notice": {"issuing_country": "TJ", "type": "diffusion"},
            "context": "INTERPOL cancelled the red notice in 2019; a diffusion followed in 2021.",
        },
        "repeat_request_after_deletion",
        None,
    ),
    (
        "vague extremism",
        {
            "notice": {
                "issuing_country": "RU",
                "charges": "Participation in an extremist organisation",
            }
        },
        "charge_vague_extremism_terrorism",
        "violent_or_sexual_crime_with_victims",
    ),
    (
        "membership charge naming a group",
        {"notice": {"issuing_country": "TR", "charges": "FETÖ/PDY üyeliği"}},
        "charge_vague_extremism_terrorism",
        None,
    ),
    (
        "terrorism with a concrete violent act",
        {
            "notice": {
                "issuing_country": "RU",
                "charges": "Terrorist act: a bombing that killed three people and injured twelve",
            }
        },
        "violent_or_sexual_crime_with_victims",
        "charge_vague_extremism_terrorism",
    ),
    (
        "economic charge against a critic",
        {
            "subject": {"profile_tags": ["journalist"]},
            "notice": {"issuing_country": "AZ", "charges": "Large-scale fraud and tax evasion"},
        },
        "charge_economic_against_critic",
        "ordinary_crime_without_profile",
    ),
    (
        "economic charge, no profile",
        {"notice": {"issuing_country": "AZ", "charges": "Large-scale fraud"}},
        "ordinary_crime_without_profile",
        "charge_economic_against_critic",
    ),
    (
        "private dispute excluded by RPD 83",
        {
            "notice": {
                "issuing_country": "AE",
                "charges": "Bounced cheque issued as security for a loan",
            }
        },
        "charge_rpd_excluded_category",
        None,
    ),
    (
        "provision in its jurisdiction",
        {
            "notice": {
                "issuing_country": "RU",
                "legal_provisions": [
                    "Article 282.2 of the Criminal Code of the Russian Federation"
                ],
            }
        },
        "provision_political_use",
        None,
    ),
    (
        "provision outside its jurisdiction",
        {
            "notice": {
                "issuing_country": "TR",
                "legal_provisions": [
                    "Article 282.2 of the Criminal Code of the Russian Federation"
                ],
            }
        },
        None,
        "provision_political_use",
    ),
    (
        "explicit profile tag",
        {
            "subject": {"profile_tags": ["human_rights_defender"]},
            "notice": {"issuing_country": "EG"},
        },
        "profile_dissident",
        None,
    ),
    (
        "profile from occupation",
        {
            "subject": {"occupation": "investigative journalist"},
            "notice": {"issuing_country": "EG"},
        },
        "profile_dissident",
        None,
    ),
    (
        "negated profile",
        {"subject": {"occupation": "He is not a journalist"}, "notice": {"issuing_country": "EG"}},
        None,
        "profile_dissident",
    ),
    (
        "targeted group",
        {"subject": {"ethnicity": "Uyghur"}, "notice": {"issuing_country": "CN"}},
        "targeted_group_membership",
        None,
    ),
    (
        "group the state does not target",
        {"subject": {"ethnicity": "Uyghur"}, "notice": {"issuing_country": "PT"}},
        None,
        "targeted_group_membership",
    ),
    (
        "negated membership",
        {
            "subject": {"affiliations": ["not a member of the Muslim Brotherhood"]},
            "notice": {"issuing_country": "EG"},
        },
        None,
        "targeted_group_membership",
    ),
    (
        "recognised refugee",
        {
            "subject": {"refugee_status": {"status": "recognised", "granted_by": "DE"}},
            "notice": {"issuing_country": "TJ"},
        },
        "refugee_from_requesting_state",
        None,
    ),
    (
        "protection from the requesting state itself",
        {
            "subject": {"refugee_status": {"status": "recognised", "granted_by": "TJ"}},
            "notice": {"issuing_country": "TJ"},
        },
        None,
        "refugee_from_requesting_state",
    ),
    ("torture risk", {"notice": {"issuing_country": "EG"}}, "torture_risk_on_return", None),
    (
        "no torture finding for an undocumented state",
        {"notice": {"issuing_country": "FR"}},
        None,
        "torture_risk_on_return",
    ),
    (
        "timing after departure",
        {
            "subject": {"left_requesting_country_year": 2015, "profile_tags": ["activist"]},
            "notice": {"issuing_country": "TR", "issued_date": "2017-02"},
        },
        "timing_after_exit_or_criticism",
        None,
    ),
    (
        "departure alone for an ordinary fugitive",
        {
            "subject": {"left_requesting_country_year": 2015},
            "notice": {
                "issuing_country": "TR",
                "issued_date": "2017",
                "charges": "drug trafficking",
            },
        },
        None,
        "timing_after_exit_or_criticism",
    ),
    (
        "in absentia flag",
        {"notice": {"issuing_country": "AZ", "conviction_in_absentia": True}},
        "conviction_in_absentia",
        None,
    ),
    (
        "in absentia in Russian",
        {"notice": {"issuing_country": "RU"}, "context": "Осужден заочно в 2019 году."},
        "conviction_in_absentia",
        None,
    ),
    (
        "diffusion",
        {"notice": {"issuing_country": "TJ", "type": "diffusion"}},
        "diffusion_unreviewed",
        None,
    ),
    (
        "renewed after deletion",
        {
            "notice": {"issuing_country": "TJ"},
            "context": "The earlier notice was deleted by the CCF in 2019; "
            "this diffusion followed.",
        },
        "repeat_request_after_deletion",
        None,
    ),
    (
        "family pressure",
        {
            "notice": {"issuing_country": "CN"},
            "context": "Her relatives were detained and questioned in 2018.",
        },
        "family_pressure",
        None,
    ),
    (
        "military offence",
        {"notice": {"issuing_country": "RU", "charges": "Desertion"}},
        "military_offence",
        None,
    ),
    (
        "violent crime",
        {"notice": {"issuing_country": "RU", "charges": "Murder of two people during a robbery"}},
        "violent_or_sexual_crime_with_victims",
        None,
    ),
]


@pytest.mark.parametrize(("name", "body", "fires", "silent"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_indicator_cases(
    kb: KnowledgeBase, name: str, body: dict[str, Any], fires: str | None, silent: str | None
) -> None:
    result = run(kb, **body)
    fired = codes(result)
    if fires:
        assert fires in fired, (name, sorted(fired))
        indicator = next(
            i for i in result.indicators + result.counter_indicators if i.code == fires
        )
        assert indicator.evidence
        assert indicator.source_ids
        assert set(indicator.source_ids) <= set(result.sources)
    if silent:
        assert silent not in fired, (name, sorted(fired))


def test_golden_table_covers_every_indicator(kb: KnowledgeBase) -> None:
    covered = {g[2] for g in GOLDEN if g[2]}
    assert covered == set(kb.scoring.indicators)


@pytest.mark.parametrize("country", ["CN", "RU", "TR", "TJ", "EG", "AE", "VE", "AZ"])
def test_an_ordinary_crime_is_not_high_on_the_country_alone(
    kb: KnowledgeBase, country: str
) -> None:
    for charges in (
        "Murder of a shopkeeper during an armed robbery",
        "Trafficking of 40 kg of heroin",
        "Fraud: obtained USD 2 million from 30 investors",
    ):
        result = run(
            kb, notice={"type": "red_notice", "issuing_country": country, "charges": charges}
        )
        assert RANK[result.flag] <= RANK[Flag.ELEVATED], (country, charges, result.score)


@pytest.mark.parametrize("country", ["FR", "US", "DE", "BR"])
def test_a_political_case_is_not_low_on_the_country_alone(kb: KnowledgeBase, country: str) -> None:
    result = run(
        kb,
        subject={"profile_tags": ["journalist"]},
        notice={
            "issuing_country": country,
            "charges": "Insulting the president and spreading false information",
        },
    )
    assert RANK[result.flag] >= RANK[Flag.ELEVATED], (country, result.score)


def test_a_documented_political_case_is_severe(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={
            "ethnicity": "Uyghur",
            "profile_tags": ["activist"],
            "refugee_status": {"status": "recognised", "granted_by": "DE", "year": 2016},
            "left_requesting_country_year": 2014,
        },
        notice={
            "type": "red_notice",
            "issuing_country": "CN",
            "issued_date": "2017",
            "charges": "参加恐怖组织罪",
        },
        context="Relatives were detained after he spoke at a hearing abroad.",
    )
    assert result.flag is Flag.SEVERE
    bases = {g.basis for g in result.challenge_grounds}
    assert {"constitution_article_3", "refugee_policy", "non_refoulement", "ccf_request"} <= bases
    assert result.similar_cases
    assert all(c.shared for c in result.similar_cases)
    top = result.similar_cases[0]
    assert top.country == "CN"
    assert "group:uyghur" in top.shared


def test_score_can_be_recomputed_from_the_formula(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"profile_tags": ["journalist", "activist"], "occupation": "blogger"},
        notice={
            "issuing_country": "AZ",
            "charges": "Hooliganism and drug possession",
            "type": "diffusion",
            "conviction_in_absentia": True,
        },
    )
    groups: dict[str, list[int]] = {}
    for ind in result.indicators + result.counter_indicators:
        groups.setdefault(ind.group, []).append(ind.points)
    raw = 0
    for group, points in groups.items():
        cap = kb.scoring.group_caps[group]
        assert result.score_formula.groups[group].points == points
        raw += max(-cap, min(cap, sum(points)))
    assert result.score_formula.raw_total == raw
    assert result.score == max(0, min(100, raw))
    t = result.thresholds
    expected = (
        Flag.SEVERE
        if result.score >= t.severe
        else Flag.HIGH
        if result.score >= t.high
        else Flag.ELEVATED
        if result.score >= t.elevated
        else Flag.LOW
    )
    assert result.flag is expected


def test_same_input_same_output(kb: KnowledgeBase) -> None:
    body = {
        "subject": {"religion": "Jehovah's Witness"},
        "notice": {
            "issuing_country": "RU",
            "charges": "Organising the activity of an extremist organisation (Article 282.2)",
        },
    }
    first = run(kb, **body).model_dump_json()
    assert all(run(kb, **body).model_dump_json() == first for _ in range(5))


def test_missing_information_names_what_would_change_the_result(kb: KnowledgeBase) -> None:
    result = run(kb, notice={"charges": "fraud"})
    fields = {m.field for m in result.missing_information}
    assert {
        "notice.issuing_country",
        "subject.refugee_status",
        "subject.profile_tags",
        "context",
    } <= fields
    complete = run(
        kb,
        subject={
            "profile_tags": ["journalist"],
            "left_requesting_country_year": 2019,
            "refugee_status": {"status": "none"},
        },
        notice={
            "issuing_country": "TR",
            "charges": "terör örgütü propagandası",
            "legal_provisions": ["TMK 7/2"],
            "type": "red_notice",
            "issued_date": "2020",
            "conviction_in_absentia": False,
        },
        context="Notice issued after his articles were published.",
    )
    assert complete.missing_information == []


def test_interpol_notice_is_mapped_onto_the_model(kb: KnowledgeBase) -> None:
    body = ScreeningInput.model_validate(
        {
            "interpol_notice": {
                "forename": "A",
                "name": "B",
                "date_of_birth": "1980/01/02",
                "nationalities": ["tj"],
                "arrest_warrants": [
                    {
                        "charge": "Участие в деятельности экстремистской организации",
                        "issuing_country_id": "TJ",
                    }
                ],
                "sex_id": "M",
                "_links": {"self": {"href": "x"}},
            }
        }
    )
    subject, notice = body.effective()
    assert subject.full_name == "A B"
    assert subject.date_of_birth == "1980-01-02"
    assert subject.nationalities == ["TJ"]
    assert notice.issuing_country == "TJ"
    assert notice.type is not None
    assert notice.type.value == "red_notice"
    result = screen(body, kb)
    assert "charge_vague_extremism_terrorism" in codes(result)


def test_results_cite_only_known_sources_with_urls(kb: KnowledgeBase) -> None:
    result = run(
        kb, subject={"religion": "Falun Gong"}, notice={"issuing_country": "CN", "charges": "邪教"}
    )
    cited = {s for i in result.indicators for s in i.source_ids}
    cited |= {s for g in result.challenge_grounds for s in g.source_ids}
    cited |= {s for c in result.similar_cases for s in c.source_ids}
    assert cited == set(result.sources)
    for sid, ref in result.sources.items():
        assert ref.url == str(kb.sources[sid].url)


def test_results_are_valid_against_their_own_model(kb: KnowledgeBase) -> None:
    """The engine builds its result without re-validation; every evaluation case's result must
    still pass the model's full validation and round-trip byte for byte."""
    from app.evaluate import load_cases

    cases = load_cases()
    assert len(cases) >= 40
    for case in cases:
        result = screen(ScreeningInput.model_validate(case["request"]), kb)
        encoded = result.model_dump_json()
        assert ScreeningResult.model_validate_json(encoded).model_dump_json() == encoded
