"""SQLite backup and restore: a consistent snapshot taken under writes, restored and served;
no key in a data backup, so erasure after a backup reaches the backup too; no plain text of
personal data in any database file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from app import migrate, screenings
from app.auth import ALL_SCOPES, Principal
from app.backup import BackupError, backup, restore
from app.db import Database, create_database
from app.engine import ScreeningInput
from app.keys import KeyRing
from app.main import create_app
from app.models import Client
from tests.conftest import CANARY, make_client, token_for

pytestmark = pytest.mark.anyio

BODY = {
    "subject": {
        "full_name": f"{CANARY} Person",
        "ethnicity": f"Uyghur {CANARY}",
        "religion": f"Muslim {CANARY}",
        "political_activity": f"{CANARY} activist",
        "affiliations": [f"World Uyghur Congress {CANARY}"],
        "refugee_status": {"status": "recognised", "granted_by": "DE", "year": 2017},
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "CN",
        "charges": f"terrorism {CANARY}",
        "legal_provisions": [f"Article 120 {CANARY}"],
    },
    "context": f"Relatives detained {CANARY}",
}


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "live" / "screening.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _files(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]


def _canary_hits(paths: list[Path]) -> int:
    return sum(p.read_bytes().count(CANARY.encode()) for p in paths)


async def _serve(
    settings: Any, db: Database, kb: Any, creds: Any
) -> tuple[httpx.AsyncClient, dict[str, str], KeyRing]:
    app = create_app(settings, database=db, knowledge_base=kb)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    headers = {"Authorization": f"Bearer {await token_for(client, creds)}"}
    return client, headers, app.state.keys


async def test_backup_under_writes_restores_and_serves(
    live: Path, tmp_path: Path, settings: Any, kb: Any
) -> None:
    db = create_database(f"sqlite:///{live}", background_checkpoint=True)
    db.start()
    creds = make_client(db, "tenant-a")
    client, headers, keys = await _serve(settings, db, kb, creds)
    known = (await client.post("/v1/screenings", json=BODY, headers=headers)).json()
    with db.session(write=False) as s:
        tenant_id = s.exec(select(Client.tenant_id).where(Client.client_id == creds.client_id))
        principal = Principal(creds.client_id, tenant_id.one(), frozenset(ALL_SCOPES), "t")
    request = ScreeningInput.model_validate(BODY)
    stop, written, errors = threading.Event(), [0], []

    def writer() -> None:
        while not stop.is_set():
            try:
                with db.session() as s:
                    screenings.create(s, principal, request, kb, keys)
                written[0] += 1
            except Exception as exc:  # reported below
                errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 20:
            threading.Event().wait(0.01)
        at_start = written[0] + 1
        report = backup(live, tmp_path / "b" / "backup.db")
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert report.screenings >= at_start
    assert written[0] + 1 > report.screenings  # writes went on after the snapshot

    # The data backup: consistent, no keys, no plain text.
    backup_file = tmp_path / "b" / "backup.db"
    with sqlite3.connect(backup_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM subject_keys").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tenant_keys").fetchone()[0] == 0
    conn.close()
    assert _canary_hits([backup_file]) == 0

    # Restore over the live database (writers stopped, as the procedure says).
    await client.aclose()
    db.dispose()
    restored = restore(backup_file, live)
    assert restored.screenings == report.screenings
    assert restored.readable == report.screenings
    db = create_database(f"sqlite:///{live}")
    client, headers, _ = await _serve(settings, db, kb, creds)
    r = await client.get(f"/v1/screenings/{known['id']}", headers=headers)
    assert r.status_code == 200
    assert r.json()["flag"] == known["flag"]
    listed = (await client.get("/v1/screenings?limit=200", headers=headers)).json()["items"]
    await client.aclose()
    db.dispose()
    assert len(listed) == report.screenings
    print(
        f"SECMETRIC T96 rows_at_backup={report.screenings} restored={restored.screenings} "
        f"integrity=ok boot=ok writes_during_backup={written[0] + 1 - at_start} errors=0"
    )


async def test_erasure_after_a_backup_reaches_the_backup(
    live: Path, tmp_path: Path, settings: Any, kb: Any
) -> None:
    db = create_database(f"sqlite:///{live}", background_checkpoint=True)
    db.start()
    creds = make_client(db, "tenant-a")
    client, headers, _ = await _serve(settings, db, kb, creds)
    erased = (await client.post("/v1/screenings", json=BODY, headers=headers)).json()["id"]
    kept = (await client.post("/v1/screenings", json=BODY, headers=headers)).json()["id"]
    report = backup(live, tmp_path / "backup.db", keys_dest=tmp_path / "keys.db")
    assert (report.screenings, report.subject_keys) == (2, 2)
    assert (await client.delete(f"/v1/screenings/{erased}", headers=headers)).status_code == 204
    await client.aclose()
    db.dispose()  # stops the checkpointer with a TRUNCATE checkpoint

    live_hits = _canary_hits(_files(live))
    backup_hits = _canary_hits([tmp_path / "backup.db", tmp_path / "keys.db"])

    # The usual restore takes keys from the live database: the erased screening stays sealed.
    restored = restore(tmp_path / "backup.db", live)
    assert (restored.screenings, restored.readable, restored.unreadable) == (2, 1, 1)
    db = create_database(f"sqlite:///{live}")
    client, headers, _ = await _serve(settings, db, kb, creds)
    statuses = {
        sid: (await client.get(f"/v1/screenings/{sid}", headers=headers)).status_code
        for sid in (erased, kept)
    }
    await client.aclose()
    db.dispose()
    assert statuses == {erased: 410, kept: 200}
    print(
        f"SECMETRIC T82 plaintext_hits_after_erase={live_hits + backup_hits} "
        f"backup_decryptable={statuses[erased] == 200} kept_readable={statuses[kept] == 200}"
    )
    assert live_hits == 0
    assert backup_hits == 0

    # Disaster recovery: the live database is lost; the separate keys file opens everything
    # it held, the erased screening included, which is why it must be kept short-lived.
    for p in _files(live):
        p.unlink()
    with pytest.raises(BackupError, match="keys"):
        restore(tmp_path / "backup.db", live)
    recovered = restore(tmp_path / "backup.db", live, keys=tmp_path / "keys.db")
    assert (recovered.readable, recovered.unreadable) == (2, 0)


def test_backup_refuses_to_overwrite_and_restore_refuses_a_file_with_keys(
    live: Path, tmp_path: Path
) -> None:
    target = tmp_path / "exists.db"
    target.write_bytes(b"")
    with pytest.raises(BackupError, match="exists"):
        backup(live, target)
    with sqlite3.connect(live) as conn:  # a database with a key in it is not a data backup
        conn.execute(
            "INSERT INTO tenants (id, name, created_at, retention_days) "
            "VALUES ('a', 'a', '2026-01-01', 1)"
        )
        conn.execute("INSERT INTO tenant_keys VALUES ('a', 1, 'x', x'00', '2026-01-01')")
    conn.close()
    with pytest.raises(BackupError, match="holds keys"):
        restore(live, tmp_path / "other.db", keys=live)
    assert not (tmp_path / "other.db.restoring").exists()
