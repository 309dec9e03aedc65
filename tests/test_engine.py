"""Golden cases for every indicator, the scoring rules and the engine's guarantees."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import ScreeningInput, screen
from app.engine.result import Flag, ScreeningResult
from app.engine.rules import Firing
from app.kb.loader import KnowledgeBase

RANK = {Flag.LOW: 0, Flag.ELEVATED: 1, Flag.HIGH: 2, Flag.SEVERE: 3}


def run(kb: KnowledgeBase, **body: Any) -> ScreeningResult:
    return screen(ScreeningInput.model_validate(body), kb)


def fired_all(result: ScreeningResult) -> list[Any]:
    return result.indicators + result.counter_indicators + result.return_risk.indicators


def codes(result: ScreeningResult) -> set[str]:
    return {i.code for i in fired_all(result)}


# (name, request body, indicator that must fire, indicator that must not fire)
GOLDEN: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    (
        "state pattern",
        {"notice": {"issuing_country": "CN"}},
        "requesting_state_pattern",
        "state_baseline",
    ),
    (
        "undocumented state: nothing fires on absence",
        {"notice": {"issuing_country": "FR"}},
        None,
        "requesting_state_pattern",
    ),
    (
        "baseline of a state without a detailed profile",
        {"notice": {"issuing_country": "MM"}},
        "state_baseline",
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
        "violent_charge_against_opponent",
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
            "subject": {"occupation": "engineer"},
            "notice": {
                "issuing_country": "RU",
                "charges": "Terrorist act: a bombing that killed three people and injured twelve",
            },
        },
        "ordinary_crime_with_victims",
        "charge_vague_extremism_terrorism",
    ),
    (
        "economic charge against a critic",
        {
            "subject": {"profile_tags": ["journalist"]},
            "notice": {"issuing_country": "AZ", "charges": "Large-scale fraud and tax evasion"},
        },
        "charge_economic_against_critic",
        "ordinary_crime_with_victims",
    ),
    (
        "economic charge, no profile: no counter-indicator from absence",
        {"notice": {"issuing_country": "AZ", "charges": "Large-scale fraud"}},
        None,
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
        "violent crime, the person described",
        {
            "subject": {"occupation": "car mechanic"},
            "notice": {"issuing_country": "RU", "charges": "Murder of two people during a robbery"},
        },
        "ordinary_crime_with_victims",
        "violent_charge_against_opponent",
    ),
    (
        "violent crime, nothing known of the person: no counter-indicator",
        {"notice": {"issuing_country": "RU", "charges": "Murder of two people during a robbery"}},
        None,
        "ordinary_crime_with_victims",
    ),
    (
        "violent charge against an opposition figure",
        {
            "subject": {"political_activity": "leader of the opposition party in exile"},
            "notice": {"issuing_country": "RW", "charges": "Murder and forming an armed group"},
        },
        "violent_charge_against_opponent",
        "ordinary_crime_with_victims",
    ),
    (
        "opposition in prose",
        {
            "subject": {"political_activity": "a former insider who broke with the president"},
            "notice": {"issuing_country": "KG", "charges": "Abuse of office"},
        },
        "political_opposition",
        None,
    ),
    (
        "three parts of the case point the same way",
        {
            "subject": {"profile_tags": ["journalist"]},
            "notice": {"issuing_country": "FR", "charges": "Insulting the president"},
            "context": "The notice came weeks after he published the article.",
        },
        "corroborated",
        None,
    ),
    (
        "two parts of the case point the same way",
        {
            "subject": {"profile_tags": ["journalist"]},
            "notice": {"issuing_country": "FR", "charges": "Insulting the president"},
        },
        "corroborated",
        None,
    ),
    (
        "one part only",
        {
            "subject": {"profile_tags": ["journalist"]},
            "notice": {"issuing_country": "FR", "charges": "Burglary of a warehouse"},
        },
        None,
        "corroborated",
    ),
    (
        "an independent monitor regards the prosecution as political",
        {
            "subject": {"occupation": "editor"},
            "notice": {"issuing_country": "FR", "charges": "Extortion"},
            "context": "Rights groups regard the earlier conviction as politically motivated.",
        },
        "independent_political_finding",
        None,
    ),
    (
        "the person's own claim is not a monitor's finding",
        {
            "subject": {"occupation": "editor"},
            "notice": {"issuing_country": "FR", "charges": "Extortion"},
            "context": "He says the case is politically motivated.",
        },
        None,
        "independent_political_finding",
    ),
    (
        "political role in prose",
        {
            "subject": {"political_activity": "served as deputy prime minister until 2019"},
            "notice": {"issuing_country": "KG", "charges": "Abuse of office"},
        },
        "political_exposure",
        None,
    ),
    (
        "coup in the narrative",
        {
            "notice": {"issuing_country": "ML", "charges": "Embezzlement"},
            "context": "He was minister of finance until the army took power in 2020.",
        },
        "change_of_power_context",
        None,
    ),
    (
        "protest arson is an assembly offence",
        {
            "subject": {"occupation": "student"},
            "notice": {
                "issuing_country": "BH",
                "charges": "Arson of a police vehicle during the protests; illegal gathering",
            },
        },
        "charge_assembly_protest",
        "ordinary_crime_with_victims",
    ),
    (
        "another state closed the investigation",
        {
            "notice": {"issuing_country": "RW", "charges": "Sexual assault"},
            "context": "Belgian prosecutors investigated the same allegation and declined to "
            "prosecute in 2017.",
        },
        "foreign_investigation_closed",
        None,
    ),
    (
        "a third-state court found it ordinary law",
        {
            "subject": {"occupation": "businessman"},
            "notice": {"issuing_country": "UA", "charges": "Large-scale fraud"},
            "context": "A German court granted extradition in 2019 and rejected his claim of "
            "political persecution.",
        },
        "found_compliant_elsewhere",
        None,
    ),
    (
        "co-accused convicted",
        {
            "subject": {"occupation": "accountant"},
            "notice": {"issuing_country": "IT", "charges": "Bankruptcy fraud"},
            "context": "Three co-accused were convicted in Milan in 2021.",
        },
        "co_accused_convicted",
        None,
    ),
    (
        "co-accused convicted does not count against an opponent",
        {
            "subject": {"profile_tags": ["opposition_politician"]},
            "notice": {"issuing_country": "AZ", "charges": "Fraud"},
            "context": "Three co-accused were convicted in 2021.",
        },
        None,
        "co_accused_convicted",
    ),
    (
        "protection need on return",
        {
            "subject": {"refugee_status": {"status": "asylum_pending", "granted_by": "FR"}},
            "notice": {"issuing_country": "RU"},
        },
        "protection_need",
        None,
    ),
    (
        "political profile in a state that ill-treats detainees",
        {"subject": {"profile_tags": ["journalist"]}, "notice": {"issuing_country": "EG"}},
        "profile_at_risk_in_detention",
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
        indicator = next(i for i in fired_all(result) if i.code == fires)
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
    cited = {s for i in fired_all(result) for s in i.source_ids}
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


# --- judgement v2: prose, languages, absence, confidence, two assessments -------------------

# Political exposure written in prose, in each supported language: (language, text, code).
PROSE: list[tuple[str, str, str]] = [
    ("en", "Served as deputy prime minister until the army took power", "political_exposure"),
    ("en", "Former speaker of parliament, now living abroad", "political_exposure"),
    ("en", "Was the governor's chief of staff before breaking with him", "political_opposition"),
    ("en", "Campaigns for autonomy of her province", "political_opposition"),
    ("en", "Minister who resigned in protest and joined the opposition", "political_opposition"),
    ("en", "Served as deputy prime minister until the army took power", "change_of_power_context"),
    ("ru", "Бывший министр экономики, перешел в оппозицию", "political_exposure"),
    ("ru", "Бывший министр экономики, перешел в оппозицию", "political_opposition"),
    ("ru", "Депутат парламента до государственного переворота", "change_of_power_context"),
    ("zh", "曾任副总理，后与领导层决裂", "political_exposure"),
    ("zh", "曾任副总理，后与领导层决裂", "political_opposition"),
    ("zh", "政变后流亡海外", "change_of_power_context"),
    ("tr", "Eski bakan; muhalefete geçti", "political_exposure"),
    ("tr", "Eski bakan; muhalefete geçti", "political_opposition"),
    ("tr", "Belediye başkanı iken darbe sonrası görevden alındı", "change_of_power_context"),
    ("ar", "وزير سابق انشق عن الحكومة", "political_exposure"),
    ("ar", "وزير سابق انشق عن الحكومة", "political_opposition"),
    ("ar", "غادر البلاد بعد الانقلاب", "change_of_power_context"),
    ("fr", "Ancien ministre de l'intérieur, a rompu avec le président", "political_exposure"),
    ("fr", "Ancien ministre de l'intérieur, a rompu avec le président", "political_opposition"),
    ("fr", "Député destitué après le coup d'état", "change_of_power_context"),
    ("es", "Exministro de Hacienda que rompió con el gobierno", "political_exposure"),
    ("es", "Exministro de Hacienda que rompió con el gobierno", "political_opposition"),
    ("es", "Alcalde derrocado tras el golpe de estado", "change_of_power_context"),
    ("en", "Leads the opposition in exile since 2020", "political_opposition"),
    ("en", "Candidate who rejected the official results of the vote", "political_opposition"),
    ("en", "Member of the political council of a party that was banned", "political_exposure"),
    ("ru", "Лидер оппозиции в изгнании", "political_opposition"),
    ("ru", "Не признал результаты выборов", "political_opposition"),
    ("zh", "流亡反对派领导人", "political_opposition"),
    ("tr", "Sürgündeki muhalefetin lideri", "political_opposition"),
    ("ar", "زعيم المعارضة في المنفى", "political_opposition"),
    ("fr", "Candidat qui conteste les résultats officiels", "political_opposition"),
    ("es", "Líder de la oposición en el exilio", "political_opposition"),
]


@pytest.mark.parametrize(("language", "text", "code"), PROSE, ids=[f"{p[0]}-{p[2]}" for p in PROSE])
def test_political_exposure_is_read_in_prose(
    kb: KnowledgeBase, language: str, text: str, code: str
) -> None:
    result = run(
        kb,
        subject={"political_activity": text},
        notice={"issuing_country": "KG", "charges": "Abuse of office"},
    )
    indicator = next((i for i in result.indicators if i.code == code), None)
    assert indicator is not None, (language, text, sorted(codes(result)))
    # The evidence quotes the words as they were typed, not their normalised form.
    for ev in indicator.evidence:
        assert ev.matched_text in text, (ev.matched_text, text)


def test_evidence_quotes_what_was_typed_and_merges_overlaps(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"ethnicity": "UYGHUR", "occupation": "Former Minister of Agriculture"},
        notice={"issuing_country": "CN", "charges": "组织、领导、参加恐怖组织罪"},
    )
    quoted = {e.matched_text for i in result.indicators for e in i.evidence}
    assert "UYGHUR" in quoted
    assert "Former Minister of" in quoted  # "former minister" and "minister of", merged
    assert "minister of" not in quoted
    assert "组织、领导、参加恐怖组织" in quoted


def test_a_context_judge_is_not_the_person(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        notice={"issuing_country": "KG", "charges": "Fraud"},
        context="The judge ordered his arrest after the prosecutor appealed.",
    )
    assert "political_exposure" not in codes(result)


def test_whole_word_terms_do_not_match_inside_words(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"occupation": "sells coupons"},
        notice={"issuing_country": "KG", "charges": "Fraud"},
        context="A couple of riotous weeks.",
    )
    assert not {"change_of_power_context", "charge_assembly_protest"} & codes(result)


# Inputs on which no rule may fire: every rule is shown silent on them.
NEUTRAL = [
    {"notice": {"issuing_country": "FR", "charges": "Theft of a bicycle"}},
    {"subject": {"occupation": "accountant"}, "notice": {"charges": "Tax evasion"}},
    {"subject": {"occupation": "accountant"}},
]


@pytest.mark.parametrize("body", NEUTRAL)
def test_every_rule_is_silent_on_a_neutral_input(kb: KnowledgeBase, body: dict[str, Any]) -> None:
    from app.engine.facts import gather
    from app.engine.rules import RULES

    facts = gather(ScreeningInput.model_validate(body), kb)
    fired = {code for code, rule in RULES.items() if rule(facts, kb) is not None}
    assert fired == set()
    result = run(kb, **body)
    assert (result.score, result.flag, result.return_risk.score) == (0, Flag.LOW, 0)


@pytest.mark.parametrize("country", ["FR", "MX", "KG", "NG", "ZZ"])
def test_absence_is_never_evidence(kb: KnowledgeBase, country: str) -> None:
    """An unprofiled state, an ordinary charge, nothing about the person: no counter-indicator,
    and the answer says it rests on little."""
    for charges in ("Embezzlement", "Murder of two people", "Large-scale fraud"):
        result = run(kb, notice={"issuing_country": country, "charges": charges})
        assert result.counter_indicators == [], (country, charges)
        assert result.confidence.level.value == "low", (country, charges)
        first = result.missing_information[0].field
        assert first == "subject.profile_tags", (country, charges)


def test_counter_weight_never_cancels_protection_or_profile(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={
            "profile_tags": ["journalist"],
            "refugee_status": {"status": "recognised", "granted_by": "DE"},
        },
        notice={"issuing_country": "FR", "charges": "Fraud"},
        context="A German court granted extradition in 2019 and found no political motive. "
        "Two co-accused were convicted.",
    )
    assert "found_compliant_elsewhere" in codes(result)
    groups = result.score_formula.groups
    floor = groups["profile"].subtotal + groups["protection"].subtotal
    assert result.score_formula.protected_floor == floor
    assert result.score >= floor
    assert result.score == max(0, min(100, max(result.score_formula.raw_total, floor)))


def test_return_risk_is_assessed_apart_from_the_flag(kb: KnowledgeBase) -> None:
    """An ordinary fraud notice from a state documented for torture: low flag, high return
    risk, and the non-refoulement ground still offered."""
    result = run(
        kb,
        subject={"occupation": "sales manager"},
        notice={
            "issuing_country": "CN",
            "charges": "Fraud: obtained USD 2 million from 30 victims",
        },
    )
    assert result.flag is Flag.LOW
    assert "torture_risk_on_return" not in {i.code for i in result.indicators}
    assert result.return_risk.level in (Flag.ELEVATED, Flag.HIGH, Flag.SEVERE)
    assert "torture_risk_on_return" in {i.code for i in result.return_risk.indicators}
    assert "non_refoulement" in {g.basis for g in result.challenge_grounds}
    assert set(result.return_risk.source_ids) <= set(result.sources)


def test_confidence_rules(kb: KnowledgeBase) -> None:
    full = run(
        kb,
        subject={
            "occupation": "journalist",
            "refugee_status": {
                "status": "recognised",
                "granted_by": "DE",
                "persecution_country": "TR",
            },
        },
        notice={"issuing_country": "TR", "charges": "terör örgütü propagandası"},
        context="The notice followed his articles.",
    )
    assert full.confidence.level.value == "high"
    assert full.confidence.reasons == []
    some = run(
        kb,
        subject={"occupation": "journalist"},
        notice={"issuing_country": "TR", "charges": "terör örgütü propagandası"},
    )
    assert some.confidence.level.value == "medium"
    assert {r.code for r in some.confidence.reasons} == {"refugee_status_unknown", "no_context"}
    bare = run(kb, notice={"issuing_country": "TR", "charges": "Fraud"})
    assert bare.confidence.level.value == "low"
    assert "no_subject_information" in {r.code for r in bare.confidence.reasons}
    unknown_state = run(
        kb,
        subject={"occupation": "journalist", "refugee_status": {"status": "none"}},
        notice={"issuing_country": "FR", "charges": "Defamation"},
        context="Nothing else is known.",
    )
    assert {r.code for r in unknown_state.confidence.reasons} == {"requesting_state_undocumented"}
    assert unknown_state.confidence.level.value == "medium"
    baseline = run(
        kb,
        subject={"occupation": "journalist", "refugee_status": {"status": "none"}},
        notice={"issuing_country": "MM", "charges": "Defamation"},
        context="Nothing else is known.",
    )
    assert {r.code for r in baseline.confidence.reasons} == {"requesting_state_baseline_only"}


def test_baseline_alone_never_reaches_elevated(kb: KnowledgeBase) -> None:
    for iso2, b in kb.baselines.items():
        if b.freedom_in_the_world is None and b.transnational_repression is None:
            continue
        result = run(kb, notice={"issuing_country": iso2})
        assert result.flag is Flag.LOW, iso2


# Exact scores: every point, cap and boundary of the published formula pinned.
EXACT: list[tuple[str, dict[str, Any], int, Flag, dict[str, int]]] = [
    (
        "state pattern alone (strong): 20, below elevated",
        {"notice": {"issuing_country": "CN"}},
        20,
        Flag.LOW,
        {"requesting_state_pattern": 20},
    ),
    (
        "exactly the elevated boundary: political charge 25",
        {"notice": {"issuing_country": "FR", "charges": "Insulting the president"}},
        25,
        Flag.ELEVATED,
        {"charge_political_offence": 25},
    ),
    (
        "charge group capped at 30: political 25 + military 20",
        {"notice": {"issuing_country": "FR", "charges": "Desertion and insulting the president"}},
        30,
        Flag.ELEVATED,
        {"charge_political_offence": 25, "military_offence": 20},
    ),
    (
        "exactly the high boundary: recognised refugee 30 + state 20",
        {
            "subject": {"refugee_status": {"status": "recognised", "granted_by": "DE"}},
            "notice": {"issuing_country": "CN"},
        },
        50,
        Flag.HIGH,
        {"requesting_state_pattern": 20, "refugee_from_requesting_state": 30},
    ),
    (
        "profile capped at 35, charge 30, state 20, corroborated 10: severe, clamped at 100",
        {
            "subject": {
                "ethnicity": "Uyghur",
                "profile_tags": ["journalist"],
                "political_activity": "campaigns for autonomy",
            },
            "notice": {"issuing_country": "CN", "charges": "煽动颠覆国家政权罪; 分裂国家罪"},
            "context": "Her relatives were detained in 2019.",
        },
        100,
        Flag.SEVERE,
        {
            "requesting_state_pattern": 20,
            "charge_political_offence": 25,
            "profile_dissident": 20,
            "targeted_group_membership": 20,
            "political_opposition": 15,
            "provision_political_use": 15,
            "family_pressure": 6,
            "corroborated": 10,
        },
    ),
    (
        "counter-indicators: victims and co-accused, nothing political",
        {
            "subject": {"occupation": "car dealer"},
            "notice": {"issuing_country": "CN", "charges": "Murder of two victims"},
            "context": "Two co-accused were convicted in 2020.",
        },
        0,
        Flag.LOW,
        {
            "requesting_state_pattern": 20,
            "ordinary_crime_with_victims": -20,
            "co_accused_convicted": -10,
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "score", "flag", "points"), EXACT, ids=[e[0] for e in EXACT]
)
def test_exact_scores(
    kb: KnowledgeBase,
    name: str,
    body: dict[str, Any],
    score: int,
    flag: Flag,
    points: dict[str, int],
) -> None:
    result = run(kb, **body)
    fired = {i.code: i.points for i in result.indicators + result.counter_indicators}
    assert fired == points, name
    assert (result.score, result.flag) == (score, flag), name


# Cues in the charge text and the narrative, in each language: (language, field, text, code).
CUES: list[tuple[str, str, str, str]] = [
    ("en", "charges", "Fraud; sentenced in absentia in 2019", "conviction_in_absentia"),
    ("fr", "charges", "Escroquerie, condamné par contumace", "conviction_in_absentia"),
    ("es", "charges", "Estafa; condenado en rebeldía", "conviction_in_absentia"),
    ("ru", "charges", "Мошенничество, осужден заочно", "conviction_in_absentia"),
    ("tr", "charges", "Dolandırıcılık, gıyaben mahkum edildi", "conviction_in_absentia"),
    ("ar", "charges", "احتيال، حكم عليه غيابيا", "conviction_in_absentia"),
    ("zh", "charges", "诈骗罪，缺席审判", "conviction_in_absentia"),
    (
        "en",
        "context",
        "Extradition refused by Spain in 2018; now a new request.",
        "repeat_request_after_deletion",
    ),
    (
        "en",
        "context",
        "An earlier notice, which he understands was refused.",
        "repeat_request_after_deletion",
    ),
    ("fr", "context", "La France a refusé l'extradition en 2019.", "repeat_request_after_deletion"),
    ("es", "context", "España denegó la extradición en 2019.", "repeat_request_after_deletion"),
    ("ru", "context", "Суд отказал в выдаче в 2019 году.", "repeat_request_after_deletion"),
    ("tr", "context", "Almanya iadesi reddedildi.", "repeat_request_after_deletion"),
    ("ar", "context", "رفض طلب التسليم في عام 2019.", "repeat_request_after_deletion"),
    ("en", "context", "Belgian prosecutors declined to prosecute.", "foreign_investigation_closed"),
    (
        "fr",
        "context",
        "L'enquête a été classée sans suite en 2018.",
        "foreign_investigation_closed",
    ),
    ("es", "context", "La fiscalía archivó la causa en 2018.", "foreign_investigation_closed"),
    ("ru", "context", "Уголовное дело прекращено в 2018 году.", "foreign_investigation_closed"),
    ("tr", "context", "Savcılık takipsizlik kararı verdi.", "foreign_investigation_closed"),
    ("ar", "context", "تم حفظ التحقيق في 2018.", "foreign_investigation_closed"),
    ("zh", "context", "检察院决定不予起诉。", "foreign_investigation_closed"),
    ("fr", "charges", "Participation à une manifestation non autorisée", "charge_assembly_protest"),
    ("es", "charges", "Desórdenes públicos durante una protesta", "charge_assembly_protest"),
    ("ru", "charges", "Участие в массовых беспорядках", "charge_assembly_protest"),
    ("tr", "charges", "İzinsiz gösteri ve yürüyüş", "charge_assembly_protest"),
    ("ar", "charges", "التجمهر والمشاركة في مظاهرة غير مرخصة", "charge_assembly_protest"),
    ("zh", "charges", "非法集会、游行、示威罪", "charge_assembly_protest"),
    ("fr", "charges", "Atteinte à la sûreté de l'État", "charge_political_offence"),
    ("fr", "charges", "Troubles aggravés à l'ordre public", "charge_assembly_protest"),
    ("es", "charges", "Delito contra la seguridad del Estado", "charge_political_offence"),
    ("es", "charges", "Sedición y rebelión", "charge_political_offence"),
    ("ar", "charges", "المساس بأمن الدولة", "charge_political_offence"),
    (
        "en",
        "context",
        "Amnesty International named him a prisoner of conscience.",
        "independent_political_finding",
    ),
    (
        "en",
        "context",
        "Rights groups called the charges politically motivated.",
        "independent_political_finding",
    ),
    (
        "ru",
        "context",
        "Правозащитные организации признали его политзаключенным.",
        "independent_political_finding",
    ),
    (
        "ru",
        "context",
        "Правозащитные организации считают дело политически мотивированным.",
        "independent_political_finding",
    ),
    ("zh", "context", "人权组织认为他是良心犯。", "independent_political_finding"),
    (
        "tr",
        "context",
        "İnsan hakları örgütleri onu vicdan mahkumu olarak tanıdı.",
        "independent_political_finding",
    ),
    ("ar", "context", "اعتبرته منظمة العفو الدولية سجين رأي.", "independent_political_finding"),
    (
        "fr",
        "context",
        "Les ONG de défense des droits le considèrent prisonnier politique.",
        "independent_political_finding",
    ),
    (
        "es",
        "context",
        "Organizaciones de derechos humanos lo consideran preso político.",
        "independent_political_finding",
    ),
]


@pytest.mark.parametrize(
    ("language", "where", "text", "code"), CUES, ids=[f"{c[0]}-{c[3]}" for c in CUES]
)
def test_cues_are_read_in_each_language(
    kb: KnowledgeBase, language: str, where: str, text: str, code: str
) -> None:
    body: dict[str, Any] = {
        "subject": {"profile_tags": ["journalist"]},
        "notice": {"issuing_country": "KG", "charges": "Fraud"},
    }
    if where == "charges":
        body["notice"] = {"issuing_country": "KG", "charges": text}
    else:
        body["context"] = text
    result = run(kb, **body)
    assert code in codes(result), (language, text, sorted(codes(result)))


def test_refugee_protection_is_against_the_state_fled(kb: KnowledgeBase) -> None:
    def screened(persecution_country: str | None) -> Any:
        status: dict[str, Any] = {"status": "recognised", "granted_by": "DE"}
        if persecution_country:
            status["persecution_country"] = persecution_country
        return run(
            kb,
            subject={"occupation": "engineer", "refugee_status": status},
            notice={"issuing_country": "TR", "charges": "Fraud"},
        )

    fled_requesting = screened("TR")
    assert "refugee_from_requesting_state" in codes(fled_requesting)
    assert "persecution_country_assumed" not in {r.code for r in fled_requesting.confidence.reasons}
    # A refugee from another state has no protection against this one.
    fled_other = screened("SY")
    assert "refugee_from_requesting_state" not in codes(fled_other)
    assert "protection_need" not in {i.code for i in fled_other.return_risk.indicators}
    # Not given: assumed (the score is not lowered), and the confidence says so.
    assumed = screened(None)
    assert "refugee_from_requesting_state" in codes(assumed)
    assert assumed.score == fled_requesting.score
    assert "persecution_country_assumed" in {r.code for r in assumed.confidence.reasons}
    assert "subject.refugee_status.persecution_country" in {
        m.field for m in assumed.missing_information
    }


# --- behaviour the mutation run showed unpinned ------------------------------------------


def _indicator(result: ScreeningResult, code: str) -> Any:
    return next(i for i in fired_all(result) if i.code == code)


def test_evidence_names_the_field_and_the_entry(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={
            "profile_tags": ["journalist", "blogger"],
            "refugee_status": {"status": "recognised", "granted_by": "DE"},
        },
        notice={"issuing_country": "CN", "charges": "Fraud"},
    )
    state = _indicator(result, "requesting_state_pattern").evidence
    assert [(e.field, e.matched_text, e.knowledge_base_entry) for e in state] == [
        ("notice.issuing_country", "CN", "country:CN")
    ]
    refugee = _indicator(result, "refugee_from_requesting_state").evidence
    assert [(e.field, e.matched_text, e.knowledge_base_entry) for e in refugee] == [
        ("subject.refugee_status.status", "recognised", "refugee_status:recognised")
    ]
    # Two structured values of one field are two rows, never merged as if they overlapped.
    tags = [
        e for e in _indicator(result, "profile_dissident").evidence if "profile_tags" in e.field
    ]
    assert len(tags) == 2


def test_overlapping_matches_at_the_start_of_a_field_are_merged(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"occupation": "Former Minister of Agriculture"},
        notice={"issuing_country": "KG", "charges": "Abuse of office"},
    )
    quoted = [e.matched_text for e in _indicator(result, "political_exposure").evidence]
    assert quoted == ["Former Minister of"]


@pytest.mark.parametrize(
    "where",
    [
        {"notice": {"issuing_country": "KG", "charges": "Terrorism"}, "context": "Three victims."},
        {"notice": {"issuing_country": "KG", "charges": "Terrorism; explosives were found"}},
        {
            "notice": {"issuing_country": "KG", "charges": "Terrorism"},
            "context": "A weapon was found at his home.",
        },
    ],
    ids=["victims in the narrative", "weapon in the charge", "weapon in the narrative"],
)
def test_a_concrete_act_anywhere_silences_the_vague_terrorism_indicator(
    kb: KnowledgeBase, where: dict[str, Any]
) -> None:
    plain = run(kb, notice={"issuing_country": "KG", "charges": "Terrorism"})
    assert "charge_vague_extremism_terrorism" in codes(plain)
    assert "charge_vague_extremism_terrorism" not in codes(run(kb, **where))


@pytest.mark.parametrize("status", ["recognised", "asylum_pending"])
def test_co_accused_counter_never_fires_for_a_protected_person(
    kb: KnowledgeBase, status: str
) -> None:
    body: dict[str, Any] = {
        "subject": {"occupation": "car dealer"},
        "notice": {"issuing_country": "FR", "charges": "Fraud"},
        "context": "Two co-accused were convicted in 2020.",
    }
    assert "co_accused_convicted" in codes(run(kb, **body))
    body["subject"]["refugee_status"] = {"status": status, "granted_by": "DE"}
    assert "co_accused_convicted" not in codes(run(kb, **body))


def test_a_refugee_status_alone_describes_the_person(kb: KnowledgeBase) -> None:
    def victims(status: str) -> set[str]:
        return codes(
            run(
                kb,
                subject={"refugee_status": {"status": status}},
                notice={"issuing_country": "FR", "charges": "Murder of a shopkeeper"},
            )
        )

    assert "ordinary_crime_with_victims" in victims("none")
    assert "ordinary_crime_with_victims" not in victims("unknown")


def test_evidence_merging_rules() -> None:
    from app.engine.facts import Evidence as Raw
    from app.engine.screen import _overlap

    a = Raw("subject.occupation", "former minister", "exposure:minister", 0, 16)
    b = Raw("subject.occupation", "minister of", "exposure:minister", 7, 18)
    assert _overlap(a, b)
    assert _overlap(b, a)
    touching = Raw("subject.occupation", "of agriculture", "x", 16, 30)
    assert not _overlap(a, touching)
    assert not _overlap(touching, a)
    assert not _overlap(a, b._replace(field="subject.political_activity"))
    structured = Raw("subject.profile_tags[0]", "journalist", "tag:journalist")
    assert not _overlap(structured, structured)  # no span: never merged by position
    assert not _overlap(a, a._replace(start=-1, end=-1))
    assert not _overlap(a._replace(start=-1, end=-1), a)


def test_merged_evidence_spans_both_matches_in_either_order(kb: KnowledgeBase) -> None:
    from app.engine.facts import Evidence as Raw
    from app.engine.facts import gather
    from app.engine.screen import _evidence

    facts = gather(
        ScreeningInput.model_validate(
            {"subject": {"occupation": "Former Minister of Agriculture"}, "notice": {}}
        ),
        kb,
    )
    first = Raw("subject.occupation", "former minister", "e", 0, 16)
    second = Raw("subject.occupation", "minister of", "e", 7, 18)
    for order in ([first, second], [second, first]):
        quoted = [e.matched_text for e in _evidence(Firing(order), facts)]
        assert quoted == ["Former Minister of"], order
    twice = Raw("subject.profile_tags[0]", "journalist", "tag:journalist")
    assert len(_evidence(Firing([twice, twice]), facts)) == 1  # a repeated value, once
    other = twice._replace(matched_text="blogger")
    assert len(_evidence(Firing([twice, other]), facts)) == 2


def test_a_level_missing_from_the_table_earns_nothing(kb: KnowledgeBase) -> None:
    from app.engine.rules import points_for

    spec = kb.scoring.indicators["requesting_state_pattern"]
    assert points_for(spec, Firing([], "strong")) == 20
    assert points_for(spec, Firing([], "not-a-level")) == 0
    flat = kb.scoring.indicators["profile_dissident"]
    assert points_for(flat, Firing([], None)) == 20


def test_patterns_named_on_an_indicator_follow_the_state(kb: KnowledgeBase) -> None:
    from app.engine.facts import gather
    from app.engine.screen import _patterns_for

    def facts(country: str) -> Any:
        body = {"notice": {"issuing_country": country, "charges": "Insulting the president"}}
        return gather(ScreeningInput.model_validate(body), kb)

    code = "charge_political_offence"
    every = list(kb.index.patterns_by_indicator.get(code, ()))
    assert every
    # An undocumented state: every pattern the indicator signals.
    assert _patterns_for(code, None, facts("FR"), kb) == every
    # A documented state: only those its profile documents, in the indicator's order.
    documented = kb.countries["TR"].patterns
    assert _patterns_for(code, None, facts("TR"), kb) == [p for p in every if p in documented]
    assert set(_patterns_for(code, None, facts("TR"), kb)) < set(every) or set(every) <= set(
        documented
    )


def test_each_indicator_cites_the_sources_of_what_it_matched(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"profile_tags": ["journalist"], "ethnicity": "Uyghur"},
        notice={
            "issuing_country": "CN",
            "charges": "贪污罪",
            "legal_provisions": ["Article 382 of the Criminal Law of the PRC"],
        },
    )
    state = _indicator(result, "requesting_state_pattern").source_ids
    findings = kb.countries["CN"].findings
    assert len(findings) > 3
    # The first three findings' sources, then the indicator's own, at most MAX_SOURCES_PER_ITEM.
    from app.engine.screen import MAX_SOURCES_PER_ITEM, _dedupe

    expected = [s for f in findings[:3] for s in f.source_ids] + list(
        kb.scoring.indicators["requesting_state_pattern"].source_ids
    )
    assert state == _dedupe(expected)
    assert len(state) == min(MAX_SOURCES_PER_ITEM, len(set(expected)))
    assert set(kb.profile_tags["journalist"].source_ids) <= set(
        _indicator(result, "profile_dissident").source_ids
    )
    assert set(kb.groups["uyghur"].source_ids) <= set(
        _indicator(result, "targeted_group_membership").source_ids
    )
    provision = _indicator(result, "provision_political_use")
    assert set(kb.provisions["cn-cl-382"].source_ids) <= set(provision.source_ids)
    assert provision.points == 8  # reported, not documented
    torture = _indicator(result, "torture_risk_on_return")
    assert set(kb.countries["CN"].torture_risk.source_ids) <= set(torture.source_ids)
    assert [(e.field, e.matched_text) for e in torture.evidence] == [
        ("notice.issuing_country", "CN")
    ]


def test_an_ordinary_crime_provision_counts_only_against_a_critic(kb: KnowledgeBase) -> None:
    notice = {
        "issuing_country": "CN",
        "charges": "贪污罪",
        "legal_provisions": ["Article 382 of the Criminal Law of the PRC"],
    }
    assert "provision_political_use" not in codes(
        run(kb, subject={"occupation": "accountant"}, notice=notice)
    )
    for subject in (
        {"occupation": "journalist"},
        {"political_activity": "Broke with the provincial leadership in 2015"},
        {"political_activity": "Former mayor ousted after the change of power"},
    ):
        assert "provision_political_use" in codes(run(kb, subject=subject, notice=notice))


@pytest.mark.parametrize(
    ("charges", "fires"),
    [
        ("Illegal religious activity: organising unregistered worship", "charge_political_offence"),
        ("Corruption: bribes for public contracts", "charge_economic_against_critic"),
        ("Embezzlement of state funds", "charge_economic_against_critic"),
    ],
)
def test_each_charge_category_feeds_its_indicator(
    kb: KnowledgeBase, charges: str, fires: str
) -> None:
    result = run(
        kb,
        subject={"occupation": "journalist"},
        notice={"issuing_country": "FR", "charges": charges},
    )
    assert fires in codes(result), sorted(codes(result))


@pytest.mark.parametrize("extra", ["murder", "rape"])
def test_a_violent_or_sexual_charge_beside_terrorism_is_not_vague(
    kb: KnowledgeBase, extra: str
) -> None:
    result = run(kb, notice={"issuing_country": "FR", "charges": f"Terrorism and {extra}"})
    assert "charge_vague_extremism_terrorism" not in codes(result)


@pytest.mark.parametrize(
    "activity",
    [
        "Broke with the president in 2019 and joined the opposition",
        "Served the government that was overthrown in the coup",
    ],
)
def test_an_opponent_in_prose_turns_an_economic_charge_political(
    kb: KnowledgeBase, activity: str
) -> None:
    result = run(
        kb,
        subject={"political_activity": activity},
        notice={"issuing_country": "FR", "charges": "Embezzlement of public funds"},
    )
    assert "charge_economic_against_critic" in codes(result)
    economic = _indicator(result, "charge_economic_against_critic")
    assert len(economic.evidence) <= 3  # the charge and at most two profile matches


def test_an_office_holder_is_at_risk_in_detention_where_detainees_are_ill_treated(
    kb: KnowledgeBase,
) -> None:
    result = run(
        kb,
        subject={"occupation": "former minister of finance"},
        notice={"issuing_country": "CN", "charges": "Fraud"},
    )
    assert "profile_at_risk_in_detention" in codes(result)


def test_timing_words_in_the_narrative_fire_timing(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"occupation": "engineer"},
        notice={"issuing_country": "FR", "charges": "Fraud"},
        context="The notice was issued two months after his asylum application.",
    )
    assert "timing_after_exit_or_criticism" in codes(result)


@pytest.mark.parametrize(
    ("status", "listed", "points", "entries"),
    [
        ("not_free", True, 12, ["freedom_in_the_world:not_free:10", "transnational_repression"]),
        ("not_free", False, 8, ["freedom_in_the_world:not_free:10"]),
        (
            "partly_free",
            True,
            8,
            ["freedom_in_the_world:partly_free:10", "transnational_repression"],
        ),
        ("partly_free", False, 4, ["freedom_in_the_world:partly_free:10"]),
        ("free", True, 4, ["freedom_in_the_world:free:10", "transnational_repression"]),
        ("free", False, None, []),
        (None, True, 8, ["transnational_repression"]),
        (None, False, None, []),
    ],
)
def test_a_baseline_is_graded_by_status_and_listing(
    kb: KnowledgeBase, status: str | None, listed: bool, points: int | None, entries: list[str]
) -> None:
    import dataclasses

    from app.kb.schema import Baseline, FreedomRating, RepressionListing

    rating = (
        FreedomRating(
            edition=2025, status=status, score=10, source_id="fh-fiw-2025-bhutan", pinpoint="p"
        )
        if status
        else None
    )
    listing = RepressionListing(origin_state=True, source_id="fh-country-rwanda", pinpoint="p")
    host_only = RepressionListing(origin_state=False, source_id="fh-country-turkey", pinpoint="p")
    baseline = Baseline(
        iso2="FR",
        name="France",
        freedom_in_the_world=rating,
        transnational_repression=listing if listed else host_only,
    )
    patched = dataclasses.replace(kb, baselines={**kb.baselines, "FR": baseline})
    result = run(patched, notice={"issuing_country": "FR", "charges": "Fraud"})
    fired = next((i for i in result.indicators if i.code == "state_baseline"), None)
    if points is None:
        assert fired is None
        return
    assert fired is not None
    assert fired.points == points
    assert [(e.field, e.matched_text, e.knowledge_base_entry) for e in fired.evidence] == [
        ("notice.issuing_country", "FR", f"baseline:FR.{entry}") for entry in entries
    ]
    expected_sources = (["fh-fiw-2025-bhutan"] if status else []) + (
        ["fh-country-rwanda"] if listed else []
    )
    assert fired.source_ids[: len(expected_sources)] == expected_sources
    assert "fh-country-turkey" not in fired.source_ids


def test_missing_information_is_pinned_word_for_word(kb: KnowledgeBase) -> None:
    bare = run(kb, notice={"type": "unknown"}, context="He has applied for asylum.")
    assert [(m.field, m.why) for m in bare.missing_information] == [
        (
            "subject.profile_tags",
            "Journalists, rights defenders, opposition figures and members of targeted groups "
            "are documented targets; say what the person does.",
        ),
        (
            "notice.charges",
            "The charge decides whether the offence is political, excluded by RPD Article 83, "
            "or a serious ordinary-law crime.",
        ),
        (
            "notice.issuing_country",
            "The requesting state's documented record and torture risk cannot be weighed "
            "without it.",
        ),
        (
            "subject.refugee_status",
            "Under INTERPOL's refugee policy a confirmed refugee or asylum-seeker status "
            "generally stops the processing of requests from the state the person fears "
            "persecution by; a pending claim weighs less. The narrative mentions refugee status "
            "or asylum.",
        ),
        (
            "notice.type",
            "A diffusion is sent directly by a member country, and INTERPOL's review of it "
            "differs from a Red Notice's; the type also decides which rules apply.",
        ),
        (
            "notice.issued_date",
            "With the year the person left the requesting state, it shows whether the notice "
            "followed departure or criticism.",
        ),
        (
            "notice.conviction_in_absentia",
            "Whether the person was convicted in absentia, knew of the proceedings and can "
            "obtain a retrial decides a fair-trial objection.",
        ),
    ]
    described = run(
        kb,
        subject={
            "occupation": "journalist",
            "refugee_status": {"status": "recognised", "granted_by": "DE"},
        },
        notice={"issuing_country": "TR", "charges": "Insulting the president"},
    )
    assert [(m.field, m.why) for m in described.missing_information][:3] == [
        (
            "notice.legal_provisions",
            "Provisions documented as used against critics add weight and identify the "
            "offence precisely.",
        ),
        (
            "notice.type",
            "A diffusion is sent directly by a member country, and INTERPOL's review of it "
            "differs from a Red Notice's; the type also decides which rules apply.",
        ),
        (
            "subject.refugee_status.persecution_country",
            "The refugee policy concerns requests from the state where the person fears "
            "persecution: say which state that is (it was taken to be the requesting state).",
        ),
    ]
    assert described.missing_information[-1].field == "context"
    assert described.missing_information[-1].why == (
        "Pressure on relatives, earlier refusals or deletions, and the timeline are signs the "
        "structured fields cannot carry."
    )
    quiet = run(kb, notice={"issuing_country": "TR", "charges": "Fraud"}, context="No news.")
    refugee = next(m for m in quiet.missing_information if m.field == "subject.refugee_status")
    assert "narrative mentions" not in refugee.why


def test_the_formula_states_its_protected_groups(kb: KnowledgeBase) -> None:
    result = run(kb, notice={"issuing_country": "TR", "charges": "Fraud"})
    assert (
        "protected_floor is the sum of the subtotals of the protected groups (profile, "
        "protection)" in result.score_formula.expression
    )
    assert "(profile, protection)" in result.score_formula.expression
    assert "(none)" in result.return_risk.score_formula.expression


@pytest.mark.parametrize(
    "charges",
    [
        "Treason",
        "Organising an unauthorised rally",
        "Insulting the president",
        "Illegal missionary activity",
        "Terrorism",
        "Extremism",
    ],
)
def test_departure_counts_as_timing_beside_each_political_kind_of_charge(
    kb: KnowledgeBase, charges: str
) -> None:
    result = run(
        kb,
        subject={"occupation": "engineer", "left_requesting_country_year": 2015},
        notice={"issuing_country": "FR", "charges": charges, "issued_date": "2015"},
    )
    timing = _indicator(result, "timing_after_exit_or_criticism")
    assert timing.evidence[0].field == "notice.issued_date"
    assert timing.evidence[0].matched_text == "2015"
    assert timing.evidence[0].knowledge_base_entry == "left_requesting_country_year:2015"
    # Before departure: no timing.
    early = run(
        kb,
        subject={"occupation": "engineer", "left_requesting_country_year": 2016},
        notice={"issuing_country": "FR", "charges": charges, "issued_date": "2015"},
    )
    assert "timing_after_exit_or_criticism" not in codes(early)


def test_a_protection_year_dates_the_notice(kb: KnowledgeBase) -> None:
    def timing(status: str, year: int) -> Any:
        result = run(
            kb,
            subject={"refugee_status": {"status": status, "granted_by": "DE", "year": year}},
            notice={"issuing_country": "FR", "charges": "Fraud", "issued_date": "2018"},
        )
        return next(
            (i for i in fired_all(result) if i.code == "timing_after_exit_or_criticism"), None
        )

    same_year = timing("recognised", 2018)
    assert same_year is not None
    assert [(e.field, e.matched_text, e.knowledge_base_entry) for e in same_year.evidence] == [
        ("notice.issued_date", "2018", "refugee_status.year:2018")
    ]
    assert timing("asylum_pending", 2017) is not None
    assert timing("recognised", 2019) is None
    assert timing("asylum_rejected", 2017) is not None  # the claim came first, even if refused
    assert timing("none", 2017) is None


def test_a_sexual_charge_is_violent_for_both_the_opponent_and_the_counter(
    kb: KnowledgeBase,
) -> None:
    opponent = run(
        kb,
        subject={"profile_tags": ["journalist"]},
        notice={"issuing_country": "FR", "charges": "Rape"},
    )
    assert "violent_charge_against_opponent" in codes(opponent)
    ordinary = run(
        kb,
        subject={"occupation": "car dealer"},
        notice={"issuing_country": "FR", "charges": "Rape"},
    )
    assert "ordinary_crime_with_victims" in codes(ordinary)


def test_a_monitors_finding_in_the_charge_text_counts(kb: KnowledgeBase) -> None:
    result = run(
        kb,
        subject={"occupation": "editor"},
        notice={
            "issuing_country": "FR",
            "charges": "Extortion (rights groups call the charge politically motivated)",
        },
    )
    finding = _indicator(result, "independent_political_finding")
    assert [e.field for e in finding.evidence] == ["notice.charges", "notice.charges"]
    named = run(
        kb,
        subject={"occupation": "editor"},
        notice={"issuing_country": "FR", "charges": "Extortion; a political prisoner per NGOs"},
    )
    assert "independent_political_finding" in codes(named)


def test_confidence_reasons_word_for_word_and_their_weights(kb: KnowledgeBase) -> None:
    def reasons(result: ScreeningResult) -> list[tuple[str, str]]:
        return [(r.code, r.text) for r in result.confidence.reasons]

    nothing = run(kb, notice={"type": "unknown"})
    assert reasons(nothing) == [
        ("no_requesting_state", "The requesting state is not given."),
        ("no_charges", "The charge is not given."),
        (
            "no_subject_information",
            "Nothing is said about who the person is (occupation, political activity, "
            "affiliations, ethnicity, religion): a political profile cannot have been seen.",
        ),
        ("refugee_status_unknown", "Refugee or asylum status is not given."),
        (
            "no_context",
            "No narrative: earlier decisions, timing and pressure on relatives are unknown.",
        ),
    ]
    assert nothing.confidence.level.value == "low"
    # One gap alone: no requesting state weighs 2, which is medium.
    only_state = run(
        kb,
        subject={"occupation": "engineer", "refugee_status": {"status": "none"}},
        notice={"charges": "Fraud"},
        context="Arrested at the border.",
    )
    assert [r.code for r in only_state.confidence.reasons] == ["no_requesting_state"]
    assert only_state.confidence.level.value == "medium"
    undocumented = run(
        kb,
        subject={"occupation": "engineer", "refugee_status": {"status": "none"}},
        notice={"issuing_country": "FR", "charges": "Fraud"},
        context="Arrested at the border.",
    )
    assert reasons(undocumented) == [
        (
            "requesting_state_undocumented",
            "The knowledge base has no profile and no global baseline for the requesting "
            "state: its record could not be weighed.",
        )
    ]
    assert undocumented.confidence.level.value == "medium"  # weight 2
    baseline_only = run(
        kb,
        subject={"occupation": "engineer", "refugee_status": {"status": "none"}},
        notice={"issuing_country": "BT", "charges": "Fraud"},
        context="Arrested at the border.",
    )
    assert reasons(baseline_only) == [
        (
            "requesting_state_baseline_only",
            "The requesting state has no detailed profile; only global indices were weighed.",
        )
    ]
    assert baseline_only.confidence.level.value == "medium"  # weight 1
    documented = run(
        kb,
        subject={"occupation": "engineer", "refugee_status": {"status": "none"}},
        notice={"issuing_country": "CN", "charges": "Fraud"},
        context="Arrested at the border.",
    )
    assert reasons(documented) == []
    assert documented.confidence.level.value == "high"
    # Weight 3 is low: an undocumented state (2) and no narrative (1).
    three = run(
        kb,
        subject={"occupation": "engineer", "refugee_status": {"status": "none"}},
        notice={"issuing_country": "FR", "charges": "Fraud"},
    )
    assert three.confidence.level.value == "low"
    # Weight 2 from the person alone: nothing said about them is low when the flag is low.
    silent = run(
        kb,
        subject={"refugee_status": {"status": "none"}},
        notice={"issuing_country": "CN", "charges": "Fraud"},
        context="Arrested at the border.",
    )
    assert silent.flag is Flag.LOW
    assert silent.confidence.level.value == "low"
    assumed = run(
        kb,
        subject={
            "occupation": "engineer",
            "refugee_status": {"status": "recognised", "granted_by": "DE"},
        },
        notice={"issuing_country": "CN", "charges": "Fraud"},
        context="Arrested at the border.",
    )
    assert reasons(assumed) == [
        (
            "persecution_country_assumed",
            "The state the person fled is not given: the protection was taken to be against "
            "the requesting state.",
        )
    ]
    assert assumed.confidence.level.value == "medium"


def test_source_references_carry_the_release_s_metadata(kb: KnowledgeBase) -> None:
    result = run(kb, subject={"occupation": "journalist"}, notice={"issuing_country": "CN"})
    assert result.sources
    for sid, ref in result.sources.items():
        src = kb.sources[sid]
        assert (ref.title, ref.publisher, ref.year) == (src.title, src.publisher, src.year)


@pytest.mark.parametrize(
    ("charges", "context", "asked"),
    [
        ("Fraud; wanted for prosecution", None, False),
        ("Fraud", "He is sought for prosecution.", False),
        ("Fraud; wanted for prosecution; was sentenced to five years", None, True),
        ("Fraud; wanted for prosecution; convicted in absentia", None, True),
        ("Fraud; wanted for prosecution", "He was tried in absentia.", True),
        ("Fraud", None, True),
    ],
)
def test_the_in_absentia_question_is_asked_only_when_a_sentence_may_exist(
    kb: KnowledgeBase, charges: str, context: str | None, asked: bool
) -> None:
    body: dict[str, Any] = {"notice": {"issuing_country": "FR", "charges": charges}}
    if context:
        body["context"] = context
    fields = {m.field for m in run(kb, **body).missing_information}
    assert ("notice.conviction_in_absentia" in fields) is asked
