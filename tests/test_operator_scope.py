"""knowledge:admin is an operator's (Privilege): a tenant's admin cannot upload or activate a
knowledge-base release, so it cannot change what other tenants' screenings say; only a client
made with ``create-client --operator`` can, and it holds no scope over tenants' data."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlmodel import select

from app.auth import ALL_SCOPES, TENANT_SCOPES
from app.db import Database
from app.kb.loader import read_files
from app.models import Client
from tests.conftest import make_client, make_operator, token_for

pytestmark = pytest.mark.anyio

R = "/v1/knowledge/releases"
BODY = {
    "subject": {"occupation": "journalist", "nationalities": ["RU"]},
    "notice": {"type": "red_notice", "issuing_country": "RU", "charges": "extremism"},
}


def _release(version: str) -> dict[str, Any]:
    files: Any = copy.deepcopy(read_files())
    files["release.yaml"]["version"] = version
    return {"files": files}


def _form(creds: Any, scope: str | None = None) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
    }
    if scope:
        form["scope"] = scope
    return form


async def test_a_tenant_admin_cannot_upload_or_activate_a_release(
    client: httpx.AsyncClient, database: Database
) -> None:
    admin_a = make_client(database, "tenant-a", TENANT_SCOPES)
    b = make_client(database, "tenant-b")
    h_a = {"Authorization": f"Bearer {await token_for(client, admin_a)}"}
    h_b = {"Authorization": f"Bearer {await token_for(client, b)}"}
    before = (await client.post("/v1/screenings?store=false", json=BODY, headers=h_b)).json()

    asked = await client.post("/v1/auth/token", data=_form(admin_a, "knowledge:admin"))
    assert asked.status_code == 400
    assert asked.json()["error"] == "invalid_scope"
    upload = await client.post(R, json=_release("7.7.7"), headers=h_a)
    assert upload.status_code == 403
    # An operator uploads it; the tenant admin still cannot activate it.
    ops = make_operator(database)
    h_ops = {"Authorization": f"Bearer {await token_for(client, ops)}"}
    assert (await client.post(R, json=_release("7.7.7"), headers=h_ops)).status_code == 201
    assert (await client.post(f"{R}/7.7.7/activate", headers=h_a)).status_code == 403
    after = (await client.post("/v1/screenings?store=false", json=BODY, headers=h_b)).json()
    assert after["knowledge_base"] == before["knowledge_base"]
    assert (after["flag"], after["score"]) == (before["flag"], before["score"])
    # The operator's token reaches no tenant's data.
    assert (await client.get("/v1/screenings", headers=h_ops)).status_code == 403
    assert (await client.post(f"{R}/7.7.7/activate", headers=h_ops)).status_code == 200
    print(
        "SECMETRIC operator_scope tenant_admin_token_with_knowledge_admin=400 "
        "tenant_admin_upload=403 tenant_admin_activate=403 other_tenant_result_changed=0"
    )


async def test_a_tenant_client_holding_knowledge_admin_in_its_row_gets_no_such_token(
    client: httpx.AsyncClient, database: Database
) -> None:
    """However a tenant's client row came to hold knowledge:admin, its tokens do not."""
    creds = make_client(database, "tenant-a")
    with database.session() as s:
        row = s.exec(select(Client).where(Client.client_id == creds.client_id)).one()
        row.scopes = list(ALL_SCOPES)
        s.add(row)
    r = await client.post("/v1/auth/token", data=_form(creds))
    assert r.status_code == 200
    assert "knowledge:admin" not in r.json()["scope"].split()
    r = await client.post("/v1/auth/token", data=_form(creds, "knowledge:admin"))
    assert r.status_code == 400
