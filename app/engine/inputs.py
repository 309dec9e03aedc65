"""What a screening takes: a person, a notice (or INTERPOL's own notice JSON) and context.

Every string and list is bounded, unknown fields are refused (except inside
``interpol_notice``, which carries whatever INTERPOL's API returns), and country codes are
ISO 3166-1 alpha-2. ``effective()`` folds ``interpol_notice`` into ``subject`` and ``notice``;
explicit fields win.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from app.kb.schema import NoticeType

Iso2 = Annotated[
    str,
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    Field(
        pattern=r"^[A-Z]{2}$",
        max_length=2,
        description="ISO 3166-1 alpha-2 country code",
        examples=["CN"],
    ),
]
PartialDate = Annotated[
    str,
    Field(
        pattern=r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$",
        description="YYYY, YYYY-MM or YYYY-MM-DD",
        examples=["1984-03"],
    ),
]
Year = Annotated[int, Field(ge=1900, le=2100)]


def _text(max_length: int, description: str = "", examples: list[str] | None = None) -> Any:
    return Field(
        default=None, max_length=max_length, description=description, examples=examples or []
    )


def _no_control_chars(value: Any) -> Any:
    # NUL and other control characters have no place in a name or a charge, and PostgreSQL
    # refuses NUL in text columns; a lone surrogate (JSON "\ud800") cannot be encoded as UTF-8.
    if isinstance(value, str) and re.search(
        r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]", value
    ):
        raise ValueError("control characters and lone surrogates are not allowed")
    return value


SafeStr = Annotated[str, BeforeValidator(_no_control_chars)]
ShortText = Annotated[SafeStr, Field(min_length=1, max_length=300)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ProfileTag(StrEnum):
    JOURNALIST = "journalist"
    BLOGGER = "blogger"
    HUMAN_RIGHTS_DEFENDER = "human_rights_defender"
    OPPOSITION_POLITICIAN = "opposition_politician"
    ACTIVIST = "activist"
    RELIGIOUS_LEADER = "religious_leader"
    LAWYER = "lawyer"
    ACADEMIC = "academic"
    BUSINESS_CRITIC = "business_critic"
    WHISTLEBLOWER = "whistleblower"
    FORMER_OFFICIAL = "former_official"
    STUDENT = "student"
    ARTIST = "artist"
    TRADE_UNIONIST = "trade_unionist"
    ETHNIC_MINORITY_ACTIVIST = "ethnic_minority_activist"
    LGBT = "lgbt"
    CONSCIENTIOUS_OBJECTOR = "conscientious_objector"
    ATHLETE = "athlete"


class RefugeeStatusValue(StrEnum):
    RECOGNISED = "recognised"
    ASYLUM_PENDING = "asylum_pending"
    ASYLUM_REJECTED = "asylum_rejected"
    NONE = "none"
    UNKNOWN = "unknown"


class RefugeeStatus(Strict):
    status: RefugeeStatusValue = Field(description="Protection status the person holds or sought.")
    granted_by: Iso2 | None = Field(
        default=None, description="The state that granted or is examining it."
    )
    year: Year | None = None
    persecution_country: Iso2 | None = Field(
        default=None,
        description=(
            "The state the person fears persecution in (the state fled). When it is not "
            "given, the requesting state is assumed and the result's confidence says so; "
            "when it is another state, the protection is not against the requesting state."
        ),
    )


class Subject(Strict):
    """The person. Every field is optional; each one given can change the result."""

    full_name: SafeStr | None = _text(200, "Not used for scoring; kept with the screening.")
    aliases: list[ShortText] = Field(default_factory=list, max_length=20)
    date_of_birth: PartialDate | None = None
    nationalities: list[Iso2] = Field(default_factory=list, max_length=10)
    residence_country: Iso2 | None = None
    ethnicity: SafeStr | None = _text(200, examples=["Uyghur"])
    religion: SafeStr | None = _text(200, examples=["Muslim"])
    occupation: SafeStr | None = _text(500, examples=["journalist"])
    political_activity: SafeStr | None = _text(
        4000,
        "Free text: activism, publications, criticism, positions held.",
        ["Vice-president of the World Uyghur Congress; testified to a foreign parliament"],
    )
    affiliations: list[ShortText] = Field(
        default_factory=list,
        max_length=30,
        description="Organisations, movements or parties, in any language.",
    )
    profile_tags: list[ProfileTag] = Field(default_factory=list, max_length=18)
    refugee_status: RefugeeStatus | None = None
    left_requesting_country_year: Year | None = Field(
        default=None, description="The year the person left the state that issued the notice."
    )


class Notice(Strict):
    """The notice or diffusion, as far as it is known."""

    type: NoticeType | None = None
    issuing_country: Iso2 | None = Field(default=None, description="The requesting state.")
    interpol_reference: SafeStr | None = _text(100, examples=["A-1234/5-2019"])
    issued_date: PartialDate | None = None
    charges: SafeStr | None = _text(
        8000,
        "What the warrant says, in any language.",
        ["Organising, leading and participating in a terrorist organisation"],
    )
    legal_provisions: list[ShortText] = Field(
        default_factory=list,
        max_length=30,
        description="Free text, e.g. 'Article 120 PRC Criminal Law'.",
    )
    conviction_in_absentia: bool | None = None
    warrant_authority: SafeStr | None = _text(300)
    public: bool | None = Field(
        default=None, description="Whether the notice is published on INTERPOL's website."
    )


class ArrestWarrant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    charge: SafeStr | None = Field(default=None, max_length=8000)
    charge_translation: SafeStr | None = Field(default=None, max_length=8000)
    issuing_country_id: SafeStr | None = Field(default=None, max_length=8)


class InterpolNotice(BaseModel):
    """A notice as INTERPOL's public notices API returns it; unlisted fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    entity_id: SafeStr | None = Field(default=None, max_length=40)
    forename: SafeStr | None = Field(default=None, max_length=200)
    name: SafeStr | None = Field(default=None, max_length=200)
    date_of_birth: SafeStr | None = Field(default=None, max_length=20, examples=["1975/04/12"])
    nationalities: list[Annotated[SafeStr, Field(max_length=8)]] | None = Field(
        default=None, max_length=10
    )
    arrest_warrants: list[ArrestWarrant] = Field(default_factory=list, max_length=20)


class ScreeningInput(Strict):
    """A screening request: a subject or a notice (or an INTERPOL notice) must be present."""

    subject: Subject | None = None
    notice: Notice | None = None
    interpol_notice: InterpolNotice | None = None
    context: SafeStr | None = _text(
        10000, "What you know: timeline, family pressure, earlier decisions, in any language."
    )

    @model_validator(mode="after")
    def _something_to_screen(self) -> ScreeningInput:
        if self.subject is None and self.notice is None and self.interpol_notice is None:
            raise ValueError("give at least a subject or a notice")
        return self

    def effective(self) -> tuple[Subject, Notice]:
        """Subject and notice with ``interpol_notice`` folded in (explicit fields win)."""
        subject = self.subject or Subject()
        notice = self.notice or Notice()
        raw = self.interpol_notice
        if raw is None:
            return subject, notice
        s_update: dict[str, Any] = {}
        n_update: dict[str, Any] = {}
        name = " ".join(p for p in (raw.forename, raw.name) if p)
        if name and not subject.full_name:
            s_update["full_name"] = name[:200]
        if raw.date_of_birth and not subject.date_of_birth:
            dob = raw.date_of_birth.replace("/", "-")
            if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", dob):
                s_update["date_of_birth"] = dob
        if raw.nationalities and not subject.nationalities:
            s_update["nationalities"] = [
                n.upper() for n in raw.nationalities if re.fullmatch(r"[A-Za-z]{2}", n)
            ]
        charges = [c for w in raw.arrest_warrants for c in (w.charge, w.charge_translation) if c]
        if charges and not notice.charges:
            n_update["charges"] = "\n".join(charges)[:8000]
        countries = [
            w.issuing_country_id.upper()
            for w in raw.arrest_warrants
            if w.issuing_country_id and re.fullmatch(r"[A-Za-z]{2}", w.issuing_country_id)
        ]
        if countries and not notice.issuing_country:
            n_update["issuing_country"] = countries[0]
        if notice.type is None:
            n_update["type"] = NoticeType.RED_NOTICE
        if notice.public is None:
            n_update["public"] = True
        if raw.entity_id and not notice.interpol_reference:
            n_update["interpol_reference"] = raw.entity_id
        return subject.model_copy(update=s_update), notice.model_copy(update=n_update)
