"""The knowledge base's data model.

Every record is validated by one of these models at load time. ``extra="forbid"`` makes a
misspelt field an error instead of silently dropped data; cross-references (source ids, pattern
codes, group ids, tags and offence categories) are checked by the loader once every file is read.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

SLUG = r"^[a-z0-9][a-z0-9_.-]{1,80}$"
PARTIAL_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"
FULL_DATE = r"^\d{4}-\d{2}-\d{2}$"
ISO2 = r"^[A-Z]{2}$"

Slug = Annotated[str, Field(pattern=SLUG)]
Iso2 = Annotated[str, Field(pattern=ISO2)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Term = Annotated[str, Field(min_length=2, max_length=200)]
SourceIds = Annotated[list[Slug], Field(min_length=1)]


def _no_placeholder(value: str) -> str:
    if re.search(r"\b(TODO|TBD|FIXME|lorem ipsum)\b", value, re.IGNORECASE):
        raise ValueError("placeholder text")
    return value


Prose = Annotated[Text, AfterValidator(_no_placeholder)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SourceKind(StrEnum):
    INTERPOL_RULE = "interpol_rule"
    UN_BODY = "un_body"
    REGIONAL_BODY = "regional_body"
    COURT_JUDGMENT = "court_judgment"
    PARLIAMENTARY_BODY = "parliamentary_body"
    GOVERNMENT = "government"
    NGO_REPORT = "ngo_report"
    JOURNALISM = "journalism"
    LEGAL_COMMENTARY = "legal_commentary"
    LAW_TEXT = "law_text"
    ACADEMIC = "academic"


class Source(Record):
    """A real public document whose URL and title were seen by the person who added it."""

    id: Slug
    title: Text
    publisher: Text
    year: int | None = Field(default=None, ge=1900, le=2100)
    # The document's own date as precisely as it gives it (YYYY, YYYY-MM or YYYY-MM-DD) and
    # the day someone last read it.
    published: str | None = Field(default=None, pattern=PARTIAL_DATE)
    checked: str | None = Field(default=None, pattern=FULL_DATE)
    url: HttpUrl
    kind: SourceKind
    facts: Annotated[list[Prose], Field(min_length=1)]


class Level(StrEnum):
    STRONG = "strong"
    MODERATE = "moderate"
    LIMITED = "limited"
    NONE = "none"


class Finding(Record):
    text: Prose
    years: str | None = Field(default=None, pattern=r"^\d{4}(-\d{4})?$")
    source_ids: SourceIds


class TortureRisk(Record):
    level: Level
    summary: Prose
    source_ids: list[Slug] = Field(default_factory=list)


class MeasureKind(StrEnum):
    """``diffusion_prior_review``: the General Secretariat checks the member's diffusions for
    compliance before they are circulated (as it does every Red Notice request)."""

    DIFFUSION_PRIOR_REVIEW = "diffusion_prior_review"


class Measure(Record):
    """A dated measure INTERPOL applies to one member's requests. The engine applies it by the
    notice's issued date: a notice from before ``since`` was not subject to it."""

    kind: MeasureKind
    since: str = Field(pattern=FULL_DATE)
    text: Prose
    source_ids: SourceIds


class Country(Record):
    """A requesting state's documented record. ``iso2: "ZZ"`` is the default profile."""

    iso2: Iso2
    name: Text
    documentation_level: Level
    summary: Prose
    findings: list[Finding] = Field(default_factory=list)
    patterns: list[Slug] = Field(default_factory=list)
    targeted_groups: list[Slug] = Field(default_factory=list)
    torture_risk: TortureRisk
    extradition_refusals: list[Finding] = Field(default_factory=list)
    measures: list[Measure] = Field(default_factory=list)


class Pattern(Record):
    code: Slug
    name: Text
    description: Prose
    recognition: Prose
    weight_rationale: Prose
    indicators: list[Slug] = Field(default_factory=list)
    # For a graded indicator, the levels at which it signals this pattern (a pending asylum
    # claim is not a recognised refugee's protection); an indicator not named here signals it
    # at every level.
    levels: dict[Slug, list[Slug]] = Field(default_factory=dict)
    source_ids: SourceIds


class PoliticalUse(StrEnum):
    DOCUMENTED = "documented"  # sources document its use against dissidents, minorities or critics
    REPORTED = "reported"  # reported in fewer or weaker sources


class Provision(Record):
    id: Slug
    jurisdiction: Iso2
    code_name: Text
    article: Annotated[str, Field(min_length=1, max_length=40)]
    title_en: Text
    title_original: Text
    category: Slug
    political_use: PoliticalUse
    charge_terms: Annotated[list[Term], Field(min_length=1)]
    notes: Prose
    source_ids: SourceIds


class GroupKind(StrEnum):
    ETHNIC = "ethnic"
    RELIGIOUS = "religious"
    POLITICAL = "political"
    CIVIC = "civic"


class Group(Record):
    id: Slug
    kind: GroupKind
    name: Text
    description: Prose
    countries: Annotated[list[Iso2], Field(min_length=1)]
    terms: Annotated[list[Term], Field(min_length=1)]
    source_ids: SourceIds


class ProfileTag(Record):
    id: Slug
    label: Text
    description: Prose
    terms: Annotated[list[Term], Field(min_length=1)]
    source_ids: SourceIds


class Stance(StrEnum):
    """``office``: a post held (former officials may be genuinely wanted for what they did in
    office); ``opposition``: a stand against the leadership (the core of Article 3);
    ``change_of_power``: the losing side of a coup or change of government."""

    OFFICE = "office"
    OPPOSITION = "opposition"
    CHANGE_OF_POWER = "change_of_power"


class ExposureRole(Record):
    """A political role or position described in prose ("former deputy prime minister",
    "broke with the governor", "campaigns for autonomy"): one of the categories INTERPOL's own
    Article 3 practice treats with care. ``in_context`` says whether the words count in the
    lawyer's narrative too, where they often describe someone else (a judge, a prosecutor)."""

    id: Slug
    label: Text
    description: Prose
    stance: Stance
    in_context: bool = True
    terms: Annotated[list[Term], Field(min_length=1)]
    source_ids: SourceIds


class FreedomStatus(StrEnum):
    FREE = "free"
    PARTLY_FREE = "partly_free"
    NOT_FREE = "not_free"


class FreedomRating(Record):
    edition: int = Field(ge=2000, le=2100)
    status: FreedomStatus
    score: int = Field(ge=-10, le=100)
    source_id: Slug
    pinpoint: Text


class RepressionListing(Record):
    origin_state: bool
    interpol_misuse: bool = False
    source_id: Slug
    pinpoint: Text


class Admission(Record):
    year: int = Field(ge=1923, le=2100)
    source_id: Slug
    pinpoint: Text


class Baseline(Record):
    """What global, dated sources say of a member state that has no detailed profile (and of
    those that have one): a starting point, never a finding about a notice."""

    iso2: Iso2
    name: Text
    admitted: Admission | None = None  # where INTERPOL's own announcement was read
    freedom_in_the_world: FreedomRating | None = None
    transnational_repression: RepressionListing | None = None


class OffenceCategory(Record):
    id: Slug
    label: Text
    description: Prose
    # RPD Art. 83(1)(a): excluded from Red Notices, or raising Article 3 concerns.
    rpd_excluded: bool = False
    political_character: bool = False
    ordinary_crime: bool = False
    terms: Annotated[list[Term], Field(min_length=1)]
    source_ids: SourceIds


class CueSet(Record):
    """Words that signal a fact in free text (a negation, a victim, a prior refusal, pressure
    on relatives). Linguistic, not factual: they carry no sources."""

    id: Slug
    description: Prose
    terms: Annotated[list[Term], Field(min_length=1)]


class NoticeType(StrEnum):
    RED_NOTICE = "red_notice"
    DIFFUSION = "diffusion"
    BLUE_NOTICE = "blue_notice"
    OTHER = "other"
    UNKNOWN = "unknown"


class CaseLabel(StrEnum):
    """abusive: sources document the request as politically motivated, or it was deleted or
    refused as such. legitimate: an ordinary-law case whose notice stood or whose extradition
    was granted on the merits. contested: sources disagree or the outcome is mixed."""

    ABUSIVE = "abusive"
    LEGITIMATE = "legitimate"
    CONTESTED = "contested"


class Case(Record):
    id: Slug
    name: Text
    country: Iso2
    year: int = Field(ge=1950, le=2100)
    notice_type: NoticeType
    charges: Prose
    profile: Prose
    profile_tags: list[Slug] = Field(default_factory=list)
    groups: list[Slug] = Field(default_factory=list)
    outcome: Prose
    label: CaseLabel
    patterns: list[Slug] = Field(default_factory=list)
    source_ids: SourceIds


class IndicatorKind(StrEnum):
    INDICATOR = "indicator"
    COUNTER_INDICATOR = "counter_indicator"


class Assessment(StrEnum):
    """``abuse``: is the notice political or otherwise contrary to INTERPOL's rules (the
    score and flag). ``return_risk``: what the person risks if returned (its own level)."""

    ABUSE = "abuse"
    RETURN_RISK = "return_risk"


class IndicatorSpec(Record):
    """One scoring rule's published weight. ``description`` is the rule's documentation and
    the explanation a reader sees; the matching logic lives in ``app.engine.rules``."""

    code: Slug
    kind: IndicatorKind
    assessment: Assessment = Assessment.ABUSE
    label: Text
    description: Prose
    points: int = Field(ge=-60, le=60)
    # Points by a graded level (e.g. a country's documentation level); overrides ``points``.
    points_by_level: dict[str, Annotated[int, Field(ge=-60, le=60)]] = Field(default_factory=dict)
    group: Slug
    source_ids: SourceIds


class Thresholds(Record):
    elevated: int = Field(ge=1, le=100)
    high: int = Field(ge=1, le=100)
    severe: int = Field(ge=1, le=100)


class ChallengeGroundSpec(Record):
    """A legal basis for challenging a notice. It is offered when any indicator in ``triggers``
    fired, or always (``always: true``, e.g. the right to petition the CCF).

    ``in_force_since`` dates the rule (a policy, a statute). ``establish`` lists what a lawyer
    must establish for the ground to succeed, stated as conditions; ``conditions`` holds the
    sentence shown when the engine finds one of its named conditions on the input (a pending
    asylum claim, a diffusion rather than a Red Notice, a sentence already passed): the engine
    decides which hold and the ground's status, the words are the knowledge base's."""

    basis: Slug
    title: Text
    explanation: Prose
    in_force_since: str | None = Field(default=None, pattern=PARTIAL_DATE)
    establish: list[Prose] = Field(default_factory=list)
    conditions: dict[Slug, Prose] = Field(default_factory=dict)
    triggers: list[Slug] = Field(default_factory=list)
    always: bool = False
    source_ids: SourceIds


def _keyed(key: str) -> AfterValidator:
    def check(items: dict[str, Any]) -> dict[str, Any]:
        for name, item in items.items():
            if getattr(item, key) != name:
                raise ValueError(f"entry {name!r} has {key} {getattr(item, key)!r}")
        return items

    return AfterValidator(check)


class Scoring(Record):
    thresholds: Thresholds
    return_risk_thresholds: Thresholds
    group_caps: dict[Slug, Annotated[int, Field(ge=1, le=100)]]
    # Groups whose evidence no counter-indicator may cancel: the abuse score never falls below
    # the sum of their capped subtotals (a recognised refugee, a documented political profile).
    protected_groups: list[Slug] = Field(default_factory=list)
    # Profile tags that count as a dissident or at-risk profile for ``profile_dissident``.
    dissident_profile_tags: list[Slug]
    indicators: Annotated[dict[Slug, IndicatorSpec], _keyed("code")]
    challenge_grounds: Annotated[dict[Slug, ChallengeGroundSpec], _keyed("basis")]


class Release(Record):
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    published: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    notes: Prose
