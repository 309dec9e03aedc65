"""The operator's CLI: migrate, tenants, clients, secrets, local bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.auth import TENANT_SCOPES
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


def test_admin_gets_the_tenant_scopes_and_only_an_operator_knowledge_admin(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["create-client", "--tenant", "ops", "--admin", "--json"]) == 0
    admin = json.loads(capsys.readouterr().out)
    assert sorted(admin["scopes"]) == sorted(TENANT_SCOPES)
    assert "knowledge:admin" not in admin["scopes"]
    assert main(["create-client", "--operator", "--json"]) == 0
    operator = json.loads(capsys.readouterr().out)
    assert sorted(operator["scopes"]) == ["knowledge:admin", "knowledge:read"]
    assert operator["tenant"] == "operator"
    # knowledge:admin by another way, or tenant scopes for an operator: refused.
    for argv in (
        ["create-client", "--tenant", "ops", "--scopes", "knowledge:admin"],
        ["create-client", "--tenant", "operator"],
        ["create-client", "--operator", "--scopes", "screenings:read"],
        ["create-client", "--operator", "--tenant", "ops"],
        ["create-client", "--operator", "--admin"],
        ["create-client"],
    ):
        assert main(argv) == 2, argv


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


def _screen_via_cli_database(env: Path) -> None:
    """Store one screening for tenant 'ngo-one' the way the API does, through the CLI's
    settings (same data folder, same master key)."""
    from sqlmodel import select

    from app import screenings
    from app.auth import Principal
    from app.db import create_database
    from app.engine import ScreeningInput
    from app.kb.loader import load
    from app.keys import KeyRing
    from app.models import Tenant
    from app.settings import Settings

    settings = Settings()
    db = create_database(settings.effective_database_url)
    try:
        with db.session() as s:
            tenant = s.exec(select(Tenant).where(Tenant.name == "ngo-one")).one()
            principal = Principal("cl_x", tenant.id, frozenset(), "j")
            body = ScreeningInput.model_validate({"notice": {"issuing_country": "FR"}})
            screenings.create(s, principal, body, load(), KeyRing(settings.master_key_bytes()))
    finally:
        db.dispose()


def test_keys_retention_backup_and_restore_commands(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create-tenant", "ngo-one"]) == 0
    _screen_via_cli_database(env)
    capsys.readouterr()

    assert main(["rotate-keys"]) == 0
    assert "tenant ngo-one: key version 2, 1 screening keys re-wrapped" in capsys.readouterr().out
    assert main(["rotate-keys", "--tenant", "nobody"]) == 2

    new_master = env / "new-master"
    from app.crypto import encode_key, new_key

    new_master.write_text(encode_key(new_key()), encoding="ascii")
    assert main(["rotate-keys", "--new-master-key-file", str(new_master)]) == 0
    assert "re-wrapped 1 tenant keys" in capsys.readouterr().out
    (env / "master-key").write_text(new_master.read_text("ascii"), encoding="ascii")

    assert main(["backup", str(env / "b.db"), "--keys", str(env / "k.db")]) == 0
    out = capsys.readouterr().out
    assert "1 screenings, no keys" in out
    assert "written separately" in out
    assert main(["backup", str(env / "b.db")]) == 2  # never overwrites
    assert main(["restore", str(env / "b.db")]) == 0
    assert "1 readable, 0 without a key" in capsys.readouterr().out

    assert main(["set-retention", "ngo-one", "0"]) == 2
    assert main(["set-retention", "ngo-one", "30"]) == 0
    assert main(["purge"]) == 0
    assert "purged 0 screenings" in capsys.readouterr().out


def test_screen_a_file_locally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    items = [
        {"client_ref": "a", "notice": {"issuing_country": "CN", "charges": "terrorism"}},
        {"client_ref": "b", "notice": {"issuing_country": "FR", "charges": "armed robbery"}},
        {"client_ref": "c", "notice": {"issuing_country": "not a country"}},
    ]
    source = tmp_path / "cases.ndjson"
    source.write_text("\n".join(json.dumps(i) for i in items), encoding="utf-8")
    capsys.readouterr()
    assert main(["screen", str(source)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["client_ref"] for x in lines] == ["a", "b", "c"]
    assert [x["state"] for x in lines] == ["done", "done", "invalid"]
    assert lines[2]["problems"][0]["field"] == "notice.issuing_country"

    out = tmp_path / "results.csv"
    assert main(["screen", str(source), "--out", str(out)]) == 0
    progress = capsys.readouterr().err
    assert "3/3" in progress
    assert "1 invalid" in progress
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["client_ref"], r["flag"]) for r in rows[:2]] == [
        ("a", lines[0]["flag"]),
        ("b", lines[1]["flag"]),
    ]
    bad = tmp_path / "cases.txt"
    bad.write_text("x", encoding="utf-8")
    assert main(["screen", str(bad)]) == 2
