"""Re-screening: a stored screening's input against another knowledge-base release, and what
changed.

``rescreen`` serves ``POST /v1/screenings/{id}/rescreen``; batch workers re-screen a tenant's
screenings in the background after a release is activated (``app.batches``). Both go through
``apply``, which replaces the stored result (sealed with the screening's own key), audits it
and, when the flag changed, queues a ``screening.changed`` webhook with the diff. Diffs hold
codes, ids, flags, scores and versions: nothing about the person.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session

from app import audit, screenings, webhooks
from app.auth import Principal
from app.engine import ScreeningInput
from app.errors import NotFound
from app.kb.loader import KnowledgeBase
from app.keys import KeyRing
from app.models import Screening
from app.releases import Releases, UnknownRelease
from app.tenancy import get_owned


class Side(BaseModel):
    flag: str
    score: int
    knowledge_base_version: str
    engine_version: str


class Diff(BaseModel):
    """What changed between two results of one screening."""

    before: Side
    after: Side
    flag_changed: bool
    score_change: int = Field(description="after.score - before.score")
    indicators_added: list[str] = Field(description="Indicator codes that fire now only.")
    indicators_removed: list[str] = Field(description="Indicator codes that no longer fire.")
    counter_indicators_added: list[str]
    counter_indicators_removed: list[str]
    challenge_grounds_added: list[str] = Field(description="Bases of new challenge grounds.")
    challenge_grounds_removed: list[str]
    sources_added: list[str] = Field(description="Ids of sources cited now only.")
    sources_removed: list[str] = Field(description="Ids of sources no longer cited.")


def _side(result: dict[str, Any]) -> Side:
    return Side(
        flag=result["flag"],
        score=result["score"],
        knowledge_base_version=result["knowledge_base"]["version"],
        engine_version=result["engine_version"],
    )


def _changes(
    before: dict[str, Any], after: dict[str, Any], key: str, field: str
) -> tuple[list[str], list[str]]:
    old = {item[field] for item in before.get(key, [])}
    new = {item[field] for item in after.get(key, [])}
    return sorted(new - old), sorted(old - new)


def diff(before: dict[str, Any], after: dict[str, Any]) -> Diff:
    ind_added, ind_removed = _changes(before, after, "indicators", "code")
    ci_added, ci_removed = _changes(before, after, "counter_indicators", "code")
    cg_added, cg_removed = _changes(before, after, "challenge_grounds", "basis")
    old_sources, new_sources = set(before.get("sources", {})), set(after.get("sources", {}))
    return Diff(
        before=_side(before),
        after=_side(after),
        flag_changed=before["flag"] != after["flag"],
        score_change=after["score"] - before["score"],
        indicators_added=ind_added,
        indicators_removed=ind_removed,
        counter_indicators_added=ci_added,
        counter_indicators_removed=ci_removed,
        challenge_grounds_added=cg_added,
        challenge_grounds_removed=cg_removed,
        sources_added=sorted(new_sources - old_sources),
        sources_removed=sorted(old_sources - new_sources),
    )


def apply(
    session: Session,
    keys: KeyRing,
    row: Screening,
    computed: screenings.Computed,
    before: dict[str, Any],
    *,
    actor: str,
    batch_id: uuid.UUID | None = None,
) -> Diff:
    """Store ``computed`` as the screening's result; audit; announce a changed flag."""
    change = diff(before, json.loads(computed.result_json))
    key = keys.subject_key(session, row.tenant_id, row.id, screenings.TABLE)
    row.flag = computed.flag
    row.score = computed.score
    row.issuing_country = computed.issuing_country
    row.engine_version = computed.engine_version
    row.kb_version = computed.kb_version
    row.kb_sha256 = computed.kb_sha256
    row.result_sealed = key.seal("result", computed.result_json.encode())
    session.add(row)
    audit.record_system(session, row.tenant_id, actor, "screening.rescreened", row.id)
    if change.flag_changed:
        webhooks.enqueue(
            session,
            row.tenant_id,
            webhooks.Event.SCREENING_CHANGED,
            {
                "screening_id": str(row.id),
                "batch_id": None if batch_id is None else str(batch_id),
                "diff": change.model_dump(mode="json"),
            },
        )
    return change


def rescreen(
    session: Session,
    principal: Principal,
    keys: KeyRing,
    releases: Releases,
    screening_id: uuid.UUID,
    *,
    version: str | None = None,
    release: KnowledgeBase | None = None,
) -> tuple[screenings.StoredScreening, Diff, bool]:
    """Screen the stored input against the active release (stored in place of the old result)
    or, with ``version``, against that release (returned, not stored: a reproduction).
    Returns the new result, the diff and whether it was stored. ``release``: that release,
    when the caller has already loaded it (``Releases.get``, in a thread)."""
    row = get_owned(session, Screening, screening_id, principal.tenant_id)
    old, request_json = screenings.get_with_input(session, principal, keys, screening_id)
    try:
        if version is None:
            kb = releases.active()
        else:
            kb = (
                release
                if release is not None and release.version == version
                else releases.get(version)
            )
    except UnknownRelease:
        raise NotFound("No knowledge-base release has this version.") from None
    computed = screenings.compute(
        ScreeningInput.model_validate_json(request_json), kb, request_json
    )
    before = json.loads(old.result_json)
    if version is not None:
        change = diff(before, json.loads(computed.result_json))
        result = screenings.StoredScreening(row.id, row.created_at, computed.result_json)
        return result, change, False
    change = apply(session, keys, row, computed, before, actor=principal.client_id)
    return screenings.StoredScreening(row.id, row.created_at, computed.result_json), change, True
