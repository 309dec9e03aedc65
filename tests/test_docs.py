"""Swagger UI works offline, and the exported OpenAPI document matches the app."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from app.openapi import SPEC_PATH

pytestmark = pytest.mark.anyio


async def test_docs_assets_are_served_by_the_app(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    assets = [r for r in refs if r.endswith((".js", ".css"))]
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert any(a.endswith("swagger-ui.css") for a in assets)
    for ref in refs:
        assert not ref.startswith(("http://", "https://", "//")), f"external reference {ref}"
        r = await client.get(ref)
        assert r.status_code == 200, ref
        assert len(r.content) > 1000, ref
    print(f"SECMETRIC DOCS assets={len(assets)} external=0")


def test_openapi_declares_client_credentials(app: Any) -> None:
    spec = app.openapi()
    scheme = spec["components"]["securitySchemes"]["OAuth2ClientCredentials"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/v1/auth/token"
    assert {"screenings:read", "knowledge:read", "tenants:admin"} <= set(flow["scopes"])
    assert spec["openapi"].startswith("3.1")


def test_exported_openapi_is_in_sync(app: Any) -> None:
    committed = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    assert committed == app.openapi(), "openapi/openapi.json is stale: run `make openapi`"
