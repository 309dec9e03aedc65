"""Backup and restore of a SQLite database, keeping keys apart from data.

A copy of the database file is not a backup under WAL (committed pages may still be in the
WAL); SQLite's online backup API copies a consistent snapshot while writers carry on.

The data backup holds no key material: its ``tenant_keys`` and ``subject_keys`` rows are
removed (with ``secure_delete`` and a ``VACUUM``) so the sealed screenings in it open only with
keys that still exist. Erasing a screening after a backup therefore erases it from the backup
too. ``--keys`` writes the keys of the same snapshot to a separate file, for disaster recovery
when the live database is lost; keep that file apart and for a short time only, because until
it is deleted it can open what was erased since.

Restore rebuilds a database from a data backup plus keys, from the live database (the usual
case: data damaged or rolled back, keys intact) or from a keys file. The server must be stopped.
PostgreSQL: see docs/operations.md.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

KEY_TABLES = ("tenant_keys", "subject_keys")


class BackupError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BackupReport:
    screenings: int
    tenant_keys: int
    subject_keys: int


@dataclass(frozen=True, slots=True)
class RestoreReport:
    screenings: int
    readable: int  # screenings whose key was found
    unreadable: int  # erased since the backup (or keys missing): they stay sealed


def _count(conn: sqlite3.Connection, table: str, schema: str = "main") -> int:
    row = conn.execute(f'SELECT count(*) FROM {schema}."{table}"').fetchone()  # noqa: S608
    return int(row[0])


def _check(conn: sqlite3.Connection) -> None:
    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"integrity check failed: {result}")
    if conn.execute("PRAGMA foreign_key_check").fetchall():
        raise BackupError("foreign key check failed")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(database: Path, dest: Path, *, keys_dest: Path | None = None) -> BackupReport:
    """Snapshot ``database`` into ``dest`` without keys (and its keys into ``keys_dest``)."""
    if not database.is_file():
        raise BackupError("the database file does not exist")
    for target in (dest, keys_dest):
        if target is not None and target.exists():
            raise BackupError(f"{target.name} exists already; choose a new path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(database)
    snapshot = sqlite3.connect(partial, isolation_level=None)
    try:
        source.backup(snapshot)  # one consistent snapshot, taken while writers continue
        _check(snapshot)
        if keys_dest is not None:
            _write_keys(snapshot, keys_dest)
        report = BackupReport(
            screenings=_count(snapshot, "screenings"),
            tenant_keys=_count(snapshot, "tenant_keys"),
            subject_keys=_count(snapshot, "subject_keys"),
        )
        snapshot.execute("PRAGMA secure_delete=ON")
        snapshot.execute("BEGIN")
        for table in reversed(KEY_TABLES):
            snapshot.execute(f'DELETE FROM "{table}"')  # noqa: S608
        snapshot.execute("COMMIT")
        snapshot.execute("VACUUM")
        _check(snapshot)
    except BaseException:
        snapshot.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    snapshot.close()
    _fsync(partial)
    partial.replace(dest)
    return report


def _write_keys(snapshot: sqlite3.Connection, keys_dest: Path) -> None:
    keys_dest.parent.mkdir(parents=True, exist_ok=True)
    partial = keys_dest.with_name(keys_dest.name + ".partial")
    partial.unlink(missing_ok=True)
    snapshot.execute("ATTACH DATABASE ? AS keys_out", (str(partial),))
    try:
        for table in KEY_TABLES:
            snapshot.execute(f'CREATE TABLE keys_out."{table}" AS SELECT * FROM main."{table}"')  # noqa: S608
    finally:
        snapshot.execute("DETACH DATABASE keys_out")
    os.chmod(partial, 0o600)
    _fsync(partial)
    partial.replace(keys_dest)


def restore(backup_file: Path, database: Path, *, keys: Path | None = None) -> RestoreReport:
    """Replace ``database`` with ``backup_file`` plus the keys from ``keys`` or, by default,
    from ``database`` itself. Keys are taken only for screenings present in the backup."""
    if not backup_file.is_file():
        raise BackupError("the backup file does not exist")
    key_source = keys if keys is not None else database
    if not key_source.is_file():
        raise BackupError("no keys: the live database is gone, so pass the keys file (--keys)")
    staging = database.with_name(database.name + ".restoring")
    staging.unlink(missing_ok=True)
    source = sqlite3.connect(backup_file)
    work = sqlite3.connect(staging, isolation_level=None)
    try:
        source.backup(work)
        source.close()
        if _count(work, "subject_keys") or _count(work, "tenant_keys"):
            raise BackupError("this file holds keys: it is not a data backup")
        work.execute("ATTACH DATABASE ? AS k", (str(key_source),))
        work.execute("BEGIN")
        work.execute(
            "INSERT INTO tenant_keys (tenant_id, version, master_key_id, wrapped, created_at) "
            "SELECT tenant_id, version, master_key_id, wrapped, created_at FROM k.tenant_keys "
            "WHERE tenant_id IN (SELECT id FROM tenants)"
        )
        work.execute(
            "INSERT INTO subject_keys (id, tenant_id, tenant_key_version, wrapped) "
            "SELECT id, tenant_id, tenant_key_version, wrapped FROM k.subject_keys "
            "WHERE id IN (SELECT id FROM screenings)"
        )
        work.execute("COMMIT")
        work.execute("DETACH DATABASE k")
        _check(work)
        screenings = _count(work, "screenings")
        readable = int(
            work.execute(
                "SELECT count(*) FROM screenings WHERE id IN (SELECT id FROM subject_keys)"
            ).fetchone()[0]
        )
        live = sqlite3.connect(database)
        try:
            work.backup(live)  # page by page into the live file, through its own locks
        finally:
            live.close()
    except BaseException:
        work.close()
        staging.unlink(missing_ok=True)
        raise
    work.close()
    staging.unlink(missing_ok=True)
    return RestoreReport(screenings=screenings, readable=readable, unreadable=screenings - readable)
