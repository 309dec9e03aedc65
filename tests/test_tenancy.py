"""Another tenant's object answers exactly like a missing one."""

from __future__ import annotations

import uuid

import httpx
import pytest

pytestmark = pytest.mark.anyio


def _comparable(r: httpx.Response) -> tuple[int, dict[str, object], str | None]:
    body = r.json()
    body.pop("request_id", None)
    return r.status_code, body, r.headers.get("content-type")


async def test_cross_tenant_client_read_is_404_like_missing(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str]
) -> None:
    mine = (await client.get("/v1/clients", headers=auth_a)).json()["items"]
    assert len(mine) == 1
    a_id = mine[0]["id"]
    assert (await client.get(f"/v1/clients/{a_id}", headers=auth_a)).status_code == 200

    theirs = await client.get(f"/v1/clients/{a_id}", headers=auth_b)
    missing = await client.get(f"/v1/clients/{uuid.uuid4()}", headers=auth_b)
    assert theirs.status_code == 404
    assert _comparable(theirs) == _comparable(missing)

    b_list = (await client.get("/v1/clients", headers=auth_b)).json()["items"]
    assert a_id not in {c["id"] for c in b_list}
    print("SECMETRIC T10 cross_tenant_requests=2 leaked_2xx=0 distinguishable_from_absent=0")
