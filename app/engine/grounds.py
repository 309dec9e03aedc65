"""Challenge grounds: which are offered, their status and what the lawyer must establish.

A ground is offered when one of its trigger indicators fired (or always, for the CCF). Its
``status`` says whether its conditions hold on the input (``applies``), may hold with something
still to establish (``may_apply``), or have a condition to check first (``check``): a pending
asylum claim, a diffusion where the rule speaks of Red Notices, a notice date not given where a
dated measure decides. The condition codes are decided here; the sentences shown for them are
the knowledge base's (``challenge_grounds[].conditions``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from app.engine.facts import Facts
from app.engine.inputs import RefugeeStatusValue
from app.engine.result import ChallengeGround, GroundStatus, Indicator
from app.engine.rules import refugee_level
from app.kb.loader import KnowledgeBase
from app.kb.schema import NoticeType

APPLIES, MAY_APPLY, CHECK = GroundStatus.APPLIES, GroundStatus.MAY_APPLY, GroundStatus.CHECK


class GroundCheck(NamedTuple):
    status: GroundStatus
    conditions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # knowledge-base texts added as they are (a dated measure)
    source_ids: tuple[str, ...] = ()


Assess = Callable[[Facts, set[str]], GroundCheck]

# The charge categories that make the charge itself political in character.
_POLITICAL_CHARGE = {"charge_political_offence", "military_offence", "charge_assembly_protest"}


def sentenced(f: Facts) -> bool:
    """The person appears to be sought to serve a sentence already passed."""
    return bool(
        f.notice.conviction_in_absentia
        or f.charge_cues.get("sentenced")
        or f.cues.get("in_absentia")
        or f.charge_cues.get("in_absentia")
    )


def naturalised(f: Facts) -> bool:
    """The person appears to hold the nationality of the state that granted protection."""
    status = f.subject.refugee_status
    granted = status.granted_by if status is not None else None
    return bool(
        (granted is not None and granted in f.subject.nationalities) or f.cues.get("naturalised")
    )


def type_unknown(f: Facts) -> bool:
    return f.notice.type in (None, NoticeType.UNKNOWN)


def _article_3(f: Facts, fired: set[str]) -> GroundCheck:
    if fired & _POLITICAL_CHARGE:
        return GroundCheck(APPLIES, ("charge_political",))
    return GroundCheck(MAY_APPLY, ("context_only",))


def _article_2(f: Facts, fired: set[str]) -> GroundCheck:
    return GroundCheck(MAY_APPLY, ("in_absentia",) if "conviction_in_absentia" in fired else ())


def _article_83(f: Facts, fired: set[str]) -> GroundCheck:
    excluded = "charge_rpd_excluded_category" in fired
    conditions = ["excluded_category" if excluded else "wording_only"]
    if sentenced(f):
        conditions.append("sentenced")
    status = APPLIES if excluded else MAY_APPLY
    if f.is_diffusion:
        conditions.append("diffusion")
        status = CHECK
    elif type_unknown(f):
        conditions.append("type_unknown")
        status = MAY_APPLY
    return GroundCheck(status, tuple(conditions))


def _refugee_policy(f: Facts, fired: set[str]) -> GroundCheck:
    status = f.subject.refugee_status
    if status is None or status.status is not RefugeeStatusValue.RECOGNISED:
        return GroundCheck(CHECK, ("asylum_pending",))
    if status.granted_by is None:
        conditions, result = ["granting_state_unknown"], MAY_APPLY
    else:
        conditions, result = ["recognised_elsewhere"], APPLIES
    if naturalised(f):
        conditions.append("naturalised")
        result = MAY_APPLY
    return GroundCheck(result, tuple(conditions))


def _non_refoulement(f: Facts, fired: set[str]) -> GroundCheck:
    if refugee_level(f) == "recognised":
        return GroundCheck(APPLIES, ("refugee",))
    return GroundCheck(MAY_APPLY)


def _diffusion(f: Facts, fired: set[str]) -> GroundCheck:
    conditions = []
    if "repeat_request_after_deletion" in fired:
        conditions.append("repeat_request")
    if "diffusion_unreviewed" in fired:
        conditions.append("diffusion")
    status = APPLIES if "repeat_request_after_deletion" in fired else MAY_APPLY
    measure, after = f.prior_review()
    if measure is None or not f.is_diffusion:
        return GroundCheck(status, tuple(conditions))
    if after is None:
        conditions.append("prior_review_date_unknown")
        status = CHECK
    elif after:
        conditions.append("prior_review_applied")
    else:
        return GroundCheck(status, tuple(conditions))
    return GroundCheck(status, tuple(conditions), (measure.text,), tuple(measure.source_ids))


def _ccf(f: Facts, fired: set[str]) -> GroundCheck:
    return GroundCheck(APPLIES, ("type_unknown",) if type_unknown(f) else ())


ASSESS: dict[str, Assess] = {
    "constitution_article_3": _article_3,
    "constitution_article_2": _article_2,
    "rpd_article_83": _article_83,
    "refugee_policy": _refugee_policy,
    "non_refoulement": _non_refoulement,
    "diffusion_and_repeat_requests": _diffusion,
    "ccf_request": _ccf,
}

# The condition codes each assessment may name: the knowledge base words each one
# (``tests/test_knowledge_base.py`` holds the two together).
CONDITIONS: dict[str, frozenset[str]] = {
    "constitution_article_3": frozenset({"charge_political", "context_only"}),
    "constitution_article_2": frozenset({"in_absentia"}),
    "rpd_article_83": frozenset(
        {"excluded_category", "wording_only", "sentenced", "diffusion", "type_unknown"}
    ),
    "refugee_policy": frozenset(
        {"recognised_elsewhere", "granting_state_unknown", "asylum_pending", "naturalised"}
    ),
    "non_refoulement": frozenset({"refugee"}),
    "diffusion_and_repeat_requests": frozenset(
        {"repeat_request", "diffusion", "prior_review_date_unknown", "prior_review_applied"}
    ),
    "ccf_request": frozenset({"type_unknown"}),
}


def _default(f: Facts, fired: set[str]) -> GroundCheck:
    return GroundCheck(MAY_APPLY)


def grounds(indicators: list[Indicator], facts: Facts, kb: KnowledgeBase) -> list[ChallengeGround]:
    """The grounds offered on these fired indicators, each with its status."""
    by_code = {i.code: i for i in indicators if i.points > 0}
    fired = set(by_code)
    out = []
    for spec in kb.scoring.challenge_grounds.values():
        reasons = tuple(by_code[c].label for c in spec.triggers if c in by_code)
        if not reasons and not spec.always:
            continue
        assessment = ASSESS.get(spec.basis, _default)(facts, fired)
        out.append(_ground(kb, spec.basis, reasons, assessment))
    return out


_GROUNDS: dict[tuple[object, ...], ChallengeGround] = {}


def _ground(
    kb: KnowledgeBase, basis: str, reasons: tuple[str, ...], a: GroundCheck
) -> ChallengeGround:
    """A challenge ground; the same combination is built once and shared (results are never
    mutated)."""
    key = (kb.sha256, basis, reasons, a)
    ground = _GROUNDS.get(key)
    if ground is None:
        spec = kb.scoring.challenge_grounds[basis]
        because = (" It is offered here because: " + "; ".join(reasons) + ".") if reasons else ""
        establish = [spec.conditions[c] for c in a.conditions if c in spec.conditions]
        sources = list(spec.source_ids)
        sources += [s for s in a.source_ids if s not in sources]
        ground = ChallengeGround(
            basis=basis,
            title=spec.title,
            explanation=spec.explanation + because,
            status=a.status,
            establish=establish + list(a.notes) + list(spec.establish),
            in_force_since=spec.in_force_since,
            source_ids=sources,
        )
        if len(_GROUNDS) > 4096:  # bounded: combinations are few in practice
            _GROUNDS.clear()
        _GROUNDS[key] = ground
    return ground
