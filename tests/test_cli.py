"""The operator's CLI: migrate, tenants, clients, secrets, local bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["migrate"]) == 0
    return tmp_path


def test_create_client_json_and_rotate(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        main(["create-client", "--tenant", "ngo-one", "--scopes", "screenings:read", "--json"]) == 0
    )
    line = capsys.readouterr().out.strip()
    created = json.loads(line)
    assert set(created) == {"client_id", "client_secret", "tenant", "scopes"}
    assert created["tenant"] == "ngo-one"
    assert created["scopes"] == ["screenings:read"]

    assert main(["rotate-secret", "--client-id", created["client_id"], "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert rotated["client_id"] == created["client_id"]
    assert rotated["client_secret"] != created["client_secret"]


def test_admin_client_gets_every_scope(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["create-client", "--tenant", "ops", "--admin", "--json"]) == 0
    assert "knowledge:admin" in json.loads(capsys.readouterr().out)["scopes"]


def test_tenant_names_and_duplicates(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create-tenant", "acme"]) == 0
    assert main(["create-tenant", "acme"]) == 2
    assert main(["create-tenant", "Bad Name!"]) == 2
    assert main(["rotate-secret", "--client-id", "cl_nope"]) == 2


def test_bootstrap_local_prints_the_secret_once(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["bootstrap-local"]) == 0
    first = capsys.readouterr().out
    assert "client_secret:" in first
    assert main(["bootstrap-local"]) == 0
    second = capsys.readouterr().out
    assert "client_secret" not in second
    assert "rotate-secret" in second
