"""Worked examples for Swagger UI. They run as they are; the facts in them are illustrative
composites of documented patterns, and no real person is named."""

from __future__ import annotations

from typing import Any

SCREENING_EXAMPLES: dict[str, dict[str, Any]] = {
    "uyghur_activist": {
        "summary": "Uyghur activist, Chinese Red Notice, recognised refugee",
        "description": "A terrorism charge with no violent act, against a member of a group "
        "China is documented as targeting, who holds refugee status abroad.",
        "value": {
            "subject": {
                "ethnicity": "Uyghur",
                "religion": "Muslim",
                "nationalities": ["CN"],
                "residence_country": "DE",
                "occupation": "Community organiser and writer",
                "political_activity": "Speaks at public events about the detention camps in "
                "Xinjiang; member of the World Uyghur Congress",
                "affiliations": ["World Uyghur Congress"],
                "profile_tags": ["activist", "ethnic_minority_activist"],
                "refugee_status": {
                    "status": "recognised",
                    "granted_by": "DE",
                    "year": 2017,
                    "persecution_country": "CN",
                },
                "left_requesting_country_year": 2015,
            },
            "notice": {
                "type": "red_notice",
                "issuing_country": "CN",
                "issued_date": "2018",
                "charges": "组织、领导、参加恐怖组织罪 (organising, leading and participating in a "
                "terrorist organisation)",
                "legal_provisions": ["Article 120 of the Criminal Law of the PRC"],
            },
            "context": "Relatives in Xinjiang were detained and questioned about the client "
            "after the client spoke at a public event abroad.",
        },
    },
    "ordinary_fraud": {
        "summary": "Ordinary fraud case, no political factor",
        "description": "A fraud charge with identified victims, co-accused already convicted "
        "and no political factor, from a state rated free.",
        "value": {
            "subject": {"nationalities": ["PT"], "occupation": "Sales manager"},
            "notice": {
                "type": "red_notice",
                "issuing_country": "PT",
                "issued_date": "2023-05",
                "charges": "Aggravated fraud: obtained EUR 2.4 million from 37 victims "
                "through a fictitious property scheme",
                "legal_provisions": ["Article 218 of the Portuguese Penal Code"],
                "conviction_in_absentia": False,
            },
            "context": "The investors filed complaints in 2021; the client left Portugal in 2022. "
            "Two co-accused were convicted in Lisbon in 2023.",
        },
    },
    "raw_interpol_notice": {
        "summary": "A notice as INTERPOL's public API returns it",
        "description": "Paste the JSON of a public Red Notice; names and charges are mapped "
        "onto the subject and the notice.",
        "value": {
            "interpol_notice": {
                "entity_id": "2019/12345",
                "forename": "EXAMPLE",
                "name": "PERSON",
                "date_of_birth": "1979/03/01",
                "nationalities": ["TJ"],
                "arrest_warrants": [
                    {
                        "charge": "Участие в деятельности экстремистской организации "
                        "(Партия исламского возрождения Таджикистана)",
                        "charge_translation": "Participation in the activity of an extremist "
                        "organisation",
                        "issuing_country_id": "TJ",
                    }
                ],
            },
            "subject": {"refugee_status": {"status": "asylum_pending", "granted_by": "PL"}},
        },
    },
}
