"""What a screening returns. Every field is explained in the OpenAPI document."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

DISCLAIMER = (
    "This is an automated screening aid built on public sources. It is not legal advice and "
    "does not establish that a notice is or is not abusive; a qualified lawyer must assess "
    "the case. Check every cited source before relying on it."
)


class Flag(StrEnum):
    LOW = "low"
    ELEVATED = "elevated"
    HIGH = "high"
    SEVERE = "severe"


class Evidence(BaseModel):
    field: str = Field(
        description="The input field, e.g. `notice.charges` or `subject.affiliations[0]`."
    )
    matched_text: str = Field(
        description="The words that matched, quoted as they were typed in the field."
    )
    knowledge_base_entry: str = Field(description="The entry they matched, as `kind:id`.")


class Indicator(BaseModel):
    code: str
    label: str
    points: int = Field(description="Points before group caps (negative for counter-indicators).")
    group: str = Field(description="The cap group the points count towards.")
    explanation: str = Field(description="The rule as published in the knowledge base.")
    evidence: list[Evidence]
    patterns: list[str] = Field(
        description="Documented abuse patterns this indicator signals here."
    )
    source_ids: list[str]


class GroundStatus(StrEnum):
    """``applies``: the ground's conditions hold on the input. ``may_apply``: they may hold,
    but something the lawyer must establish is open. ``check``: a condition is unconfirmed or
    points the other way (a pending claim, a date not given), and must be checked first."""

    APPLIES = "applies"
    MAY_APPLY = "may_apply"
    CHECK = "check"


class ChallengeGround(BaseModel):
    basis: str = Field(description="The ground's stable key, e.g. `refugee_policy`.")
    title: str
    explanation: str = Field(description="The rule and why it is offered here.")
    status: GroundStatus = Field(
        description="`applies`, `may_apply` or `check`, computed from the input: whether the "
        "ground's conditions hold, may hold, or have a condition to check first."
    )
    establish: list[str] = Field(
        description="What the lawyer must establish or check for this ground, the conditions "
        "found on this input first."
    )
    in_force_since: str | None = Field(
        default=None, description="The date of the rule or policy (YYYY, YYYY-MM or YYYY-MM-DD)."
    )
    source_ids: list[str]


class MissingInformation(BaseModel):
    field: str
    why: str


class SimilarCase(BaseModel):
    id: str
    name: str
    country: str
    year: int
    outcome: str
    label: str = Field(description="abusive, legitimate or contested, as the sources document it.")
    shared: list[str] = Field(description="What this case shares with the screening.")
    source_ids: list[str]


class SourceRef(BaseModel):
    title: str
    publisher: str
    year: int | None
    url: str


class Thresholds(BaseModel):
    elevated: int
    high: int
    severe: int


class GroupSubtotal(BaseModel):
    points: list[int]
    cap: int
    subtotal: int


class ScoreFormula(BaseModel):
    expression: str
    groups: dict[str, GroupSubtotal]
    raw_total: int
    protected_floor: int = Field(
        default=0,
        description="The sum of the protected groups' subtotals: counter-indicators never take "
        "the score below it.",
    )
    score: int


class KnowledgeBaseRef(BaseModel):
    version: str
    sha256: str


class ConfidenceLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ConfidenceReason(BaseModel):
    code: str = Field(description="A stable code, e.g. `no_subject_information`.")
    text: str = Field(description="The reason in words.")


class Confidence(BaseModel):
    """How much the result rests on. Missing facts and an undocumented requesting state lower
    confidence; they never lower the score."""

    level: ConfidenceLevel
    reasons: list[ConfidenceReason]


class ReturnRisk(BaseModel):
    """What the person risks if returned to the requesting state (torture or ill-treatment,
    persecution), assessed apart from whether the notice is political."""

    level: Flag = Field(description="low, elevated, high or severe, by `thresholds`.")
    score: int = Field(ge=0, le=100)
    thresholds: Thresholds
    indicators: list[Indicator]
    score_formula: ScoreFormula
    source_ids: list[str]


class ScreeningResult(BaseModel):
    score: int = Field(
        ge=0,
        le=100,
        description="How strongly the input matches documented signs that the notice is "
        "political or otherwise contrary to INTERPOL's rules.",
    )
    flag: Flag
    thresholds: Thresholds
    confidence: Confidence
    return_risk: ReturnRisk
    indicators: list[Indicator]
    counter_indicators: list[Indicator]
    challenge_grounds: list[ChallengeGround]
    missing_information: list[MissingInformation]
    similar_cases: list[SimilarCase]
    sources: dict[str, SourceRef]
    score_formula: ScoreFormula
    engine_version: str
    knowledge_base: KnowledgeBaseRef
    disclaimer: str = DISCLAIMER
