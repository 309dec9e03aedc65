"""Golden screenings: eight realistic requests of the kinds a practitioner screens (written
here in our own words), each asserting which grounds are offered, their status and what the
lawyer must establish, and that each legal misstatement once found is gone."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import ScreeningInput, screen
from app.engine.result import ChallengeGround, ScreeningResult
from app.kb.loader import KnowledgeBase

# Statements that were wrong and must never come back, in any result.
WRONG = (
    "unless the status was granted on grounds unrelated",
    "where the status was granted on grounds related to the request",
    "bars notices",
    "reviewed only after circulation",
    "for example a conviction in absentia",
    "torture or ill-treatment (Article 3 of the UN Convention against Torture",
)


def run(kb: KnowledgeBase, body: dict[str, Any]) -> ScreeningResult:
    return screen(ScreeningInput.model_validate(body), kb)


def grounds(result: ScreeningResult) -> dict[str, ChallengeGround]:
    return {g.basis: g for g in result.challenge_grounds}


def codes(result: ScreeningResult) -> set[str]:
    return {i.code for i in result.indicators + result.counter_indicators}


def all_text(result: ScreeningResult) -> str:
    parts = [g.explanation + " ".join(g.establish) for g in result.challenge_grounds]
    parts += [i.explanation for i in result.indicators + result.counter_indicators]
    parts += [i.explanation for i in result.return_risk.indicators]
    parts += [m.why for m in result.missing_information]
    return " ".join(parts)


def assert_no_wrong_statement(result: ScreeningResult) -> None:
    text = all_text(result)
    for wrong in WRONG:
        assert wrong not in text, wrong
    if "repeat_request_after_deletion" not in codes(result):
        assert "cite that decision" not in text


UYGHUR_ASYLUM_SEEKER = {
    "subject": {
        "ethnicity": "Uyghur",
        "occupation": "translator",
        "political_activity": "Speaks at diaspora vigils about detained relatives",
        "refugee_status": {"status": "asylum_pending", "granted_by": "NL", "year": 2022},
        "left_requesting_country_year": 2017,
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "CN",
        "issued_date": "2023-02",
        "charges": "参加恐怖组织罪 (participating in a terrorist organisation); wanted for "
        "prosecution",
    },
    "context": "He applied for asylum in the Netherlands in 2022; the claim is still pending.",
}

RUSSIAN_COORDINATOR_DIFFUSION = {
    "subject": {
        "occupation": "regional coordinator of an opposition movement",
        "profile_tags": ["activist", "opposition_politician"],
        "left_requesting_country_year": 2022,
    },
    "notice": {
        "type": "diffusion",
        "issuing_country": "RU",
        "issued_date": "2023-06-14",
        "charges": "Participation in an extremist community",
    },
    "context": (
        "Russia first asked for a Red Notice in 2022, which he understands was refused; a "
        "diffusion followed in June 2023."
    ),
}

TAJIK_IRPT_NATURALISED = {
    "subject": {
        "affiliations": ["Islamic Renaissance Party of Tajikistan"],
        "nationalities": ["TJ", "PL"],
        "refugee_status": {"status": "recognised", "granted_by": "PL", "year": 2016},
        "left_requesting_country_year": 2015,
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "TJ",
        "issued_date": "2016",
        "charges": "Membership of an extremist organisation",
    },
    "context": "He was naturalised in Poland in 2023.",
}

TURKISH_TEACHER = {
    "subject": {
        "occupation": "teacher dismissed by emergency decree",
        "affiliations": ["Gulen movement"],
        "refugee_status": {"status": "recognised", "granted_by": "DE", "year": 2018},
        "left_requesting_country_year": 2016,
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "TR",
        "issued_date": "2019",
        "charges": "Membership of an armed terrorist organisation (FETÖ/PDY)",
    },
    "context": "The evidence cited is an account at Bank Asya and use of the ByLock app.",
}

BAHRAINI_PROTESTER = {
    "subject": {
        "occupation": "student",
        "political_activity": "took part in pro-democracy protests",
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "BH",
        "issued_date": "2015",
        "charges": "Illegal gathering, rioting and arson of a police vehicle",
        "conviction_in_absentia": True,
    },
    "context": "He was sentenced in absentia to ten years after leaving the country.",
}

EGYPTIAN_JOURNALIST = {
    "subject": {"occupation": "journalist", "profile_tags": ["journalist"]},
    "notice": {
        "type": "red_notice",
        "issuing_country": "EG",
        "issued_date": "2021",
        "charges": "Joining a terrorist group and spreading false news",
    },
    "context": "He is wanted for prosecution; no trial has taken place.",
}

ITALIAN_BANKRUPTCY_FRAUD = {
    "subject": {"occupation": "former company director"},
    "notice": {
        "type": "red_notice",
        "issuing_country": "IT",
        "issued_date": "2020",
        "charges": "Fraudulent bankruptcy; sentenced to three years' imprisonment",
        "conviction_in_absentia": False,
    },
    "context": "Creditors of the insolvent company lost their claims; the trial was attended.",
}

SAUDI_WOMAN_GUARDIANSHIP = {
    "subject": {
        "occupation": "university student",
        "refugee_status": {"status": "recognised", "granted_by": "AU", "year": 2020},
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "SA",
        "issued_date": "2021",
        "charges": "Disobeying her guardian and absence from the family home without permission",
    },
}

ALL = {
    "uyghur-asylum-seeker": UYGHUR_ASYLUM_SEEKER,
    "russian-coordinator-diffusion": RUSSIAN_COORDINATOR_DIFFUSION,
    "tajik-irpt-naturalised": TAJIK_IRPT_NATURALISED,
    "turkish-teacher": TURKISH_TEACHER,
    "bahraini-protester": BAHRAINI_PROTESTER,
    "egyptian-journalist": EGYPTIAN_JOURNALIST,
    "italian-bankruptcy-fraud": ITALIAN_BANKRUPTCY_FRAUD,
    "saudi-woman-guardianship": SAUDI_WOMAN_GUARDIANSHIP,
}


@pytest.mark.parametrize("body", ALL.values(), ids=ALL.keys())
def test_no_golden_result_repeats_a_corrected_statement(
    kb: KnowledgeBase, body: dict[str, Any]
) -> None:
    result = run(kb, body)
    assert_no_wrong_statement(result)
    for g in result.challenge_grounds:
        assert g.establish, g.basis
    assert grounds(result)["ccf_request"].status.value == "applies"


def test_uyghur_asylum_seeker(kb: KnowledgeBase) -> None:
    result = run(kb, UYGHUR_ASYLUM_SEEKER)
    g = grounds(result)
    assert g["refugee_policy"].status.value == "check"
    assert '"has been confirmed"' in g["refugee_policy"].establish[0]
    assert g["refugee_policy"].in_force_since == "2015"
    assert "unpublished" in g["refugee_policy"].title
    # an asylum seeker is not tagged with the recognised refugee's pattern
    patterns = {p for i in result.indicators for p in i.patterns}
    assert "notice_against_recognised_refugee" not in patterns
    assert g["non_refoulement"].status.value == "may_apply"
    assert '"substantial grounds"' in g["non_refoulement"].explanation
    # wanted for prosecution: no question about a conviction in absentia
    assert "notice.conviction_in_absentia" not in {m.field for m in result.missing_information}


def test_russian_diffusion_after_march_2022_was_reviewed_before_circulation(
    kb: KnowledgeBase,
) -> None:
    result = run(kb, RUSSIAN_COORDINATOR_DIFFUSION)
    assert "diffusion_unreviewed" not in codes(result)
    # "which he understands was refused" is an earlier refusal
    assert "repeat_request_after_deletion" in codes(result)
    d = grounds(result)["diffusion_and_repeat_requests"]
    assert d.status.value == "applies"
    assert any("cite that decision" in e for e in d.establish)
    assert any("10 March 2022" in e for e in d.establish)
    assert any("argue its substance rather than the channel" in e for e in d.establish)


def test_russian_diffusion_without_a_date_is_a_condition_to_check(kb: KnowledgeBase) -> None:
    body = {**RUSSIAN_COORDINATOR_DIFFUSION, "context": None}
    body["notice"] = {**RUSSIAN_COORDINATOR_DIFFUSION["notice"], "issued_date": None}
    result = run(kb, body)
    assert "diffusion_unreviewed" in codes(result)
    d = grounds(result)["diffusion_and_repeat_requests"]
    assert d.status.value == "check"
    assert any("establish when the diffusion was sent" in e for e in d.establish)


def test_russian_diffusion_before_march_2022_went_out_unreviewed(kb: KnowledgeBase) -> None:
    body = dict(RUSSIAN_COORDINATOR_DIFFUSION)
    body["notice"] = {**RUSSIAN_COORDINATOR_DIFFUSION["notice"], "issued_date": "2021-11"}
    result = run(kb, body)
    assert "diffusion_unreviewed" in codes(result)


def test_rpd_article_83_on_a_diffusion_says_what_governs_it(kb: KnowledgeBase) -> None:
    body = dict(SAUDI_WOMAN_GUARDIANSHIP)
    body["notice"] = {**SAUDI_WOMAN_GUARDIANSHIP["notice"], "type": "diffusion"}
    g = grounds(run(kb, body))["rpd_article_83"]
    assert g.status.value == "check"
    assert any("Articles 97 to 101" in e for e in g.establish)


def test_tajik_irpt_member_naturalised_in_the_host_state(kb: KnowledgeBase) -> None:
    result = run(kb, TAJIK_IRPT_NATURALISED)
    g = grounds(result)["refugee_policy"]
    assert g.status.value == "may_apply"
    assert any("nationality" in e for e in g.establish)
    assert "targeted_group_membership" in codes(result)


def test_turkish_teacher_recognised_elsewhere(kb: KnowledgeBase) -> None:
    result = run(kb, TURKISH_TEACHER)
    g = grounds(result)
    assert g["refugee_policy"].status.value == "applies"
    assert "general rule, not an absolute bar" in g["refugee_policy"].explanation
    assert g["non_refoulement"].status.value == "applies"
    assert any("Article 33(1)" in e for e in g["non_refoulement"].establish)
    patterns = {p for i in result.indicators for p in i.patterns}
    assert "notice_after_asylum_claim" not in patterns


def test_bahraini_protester_convicted_in_absentia(kb: KnowledgeBase) -> None:
    result = run(kb, BAHRAINI_PROTESTER)
    assert "charge_assembly_protest" in codes(result)
    assert "ordinary_crime_with_victims" not in codes(result)
    g = grounds(result)
    assert g["constitution_article_3"].status.value == "applies"
    article_2 = g["constitution_article_2"]
    assert article_2.status.value == "may_apply"
    assert any("Sejdovic" in e and "not unfair in itself" in e for e in article_2.establish)


def test_egyptian_journalist(kb: KnowledgeBase) -> None:
    result = run(kb, EGYPTIAN_JOURNALIST)
    g = grounds(result)
    assert g["constitution_article_3"].status.value == "applies"
    explanation = g["non_refoulement"].explanation
    for test in ("substantial grounds", "inhuman or degrading", "Article 7", "Article 33(1)"):
        assert test in explanation
    # the extradition court's layer: death penalty, flagrant denial of justice, Rule 39
    for layer in ("Soering", "Othman", "flagrant denial of justice", "Rule 39"):
        assert layer in explanation
    assert "notice.conviction_in_absentia" not in {m.field for m in result.missing_information}


def test_italian_bankruptcy_fraud_is_ordinary_law(kb: KnowledgeBase) -> None:
    result = run(kb, ITALIAN_BANKRUPTCY_FRAUD)
    assert result.flag.value == "low"
    assert set(grounds(result)) == {"ccf_request"}
    ccf = grounds(result)["ccf_request"]
    assert ccf.in_force_since == "2017-03-11"
    assert "11 March 2017" in ccf.explanation
    assert "Requests Chamber" in ccf.explanation


def test_saudi_woman_charged_under_guardianship_rules(kb: KnowledgeBase) -> None:
    result = run(kb, SAUDI_WOMAN_GUARDIANSHIP)
    assert "charge_rpd_excluded_category" in codes(result)
    g = grounds(result)
    assert g["rpd_article_83"].status.value == "applies"
    assert g["refugee_policy"].status.value == "applies"


def test_ccf_access_request_first_when_the_kind_of_alert_is_unknown(kb: KnowledgeBase) -> None:
    body = {**ITALIAN_BANKRUPTCY_FRAUD, "notice": {"issuing_country": "IT", "type": "unknown"}}
    ccf = grounds(run(kb, body))["ccf_request"]
    assert any("start with a request for access" in e for e in ccf.establish)
