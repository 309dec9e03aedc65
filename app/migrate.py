"""Alembic, driven from code: the CLI's ``migrate``, ``/readyz`` and the tests use this."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url


def _migrations_dir() -> Path:
    # A source checkout (and `pip install -e .`) has migrations/ beside app/; an image that
    # installs the package keeps them in its working directory.
    beside = Path(__file__).resolve().parent.parent / "migrations"
    return beside if beside.is_dir() else Path.cwd() / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would treat '%' in a password as syntax.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    _ensure_sqlite_folder(url)
    before = _revision_at(url)
    command.upgrade(alembic_config(url), revision)
    if before is not None and _revision_at(url) != before:
        _compact_sqlite(url)


def _revision_at(url: str) -> str | None:
    """The revision of an existing SQLite file (None for a new one or another dialect)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or not Path(parsed.database).exists():
        return None
    engine = create_engine(url)
    try:
        return current_revision(engine) or "base"
    finally:
        engine.dispose()


def _compact_sqlite(url: str) -> None:
    """After migrating an existing SQLite file, rebuild it: a migration that seals or drops
    personal data leaves the old plain text in free pages until they are overwritten."""
    path = make_url(url).database
    assert path
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _ensure_sqlite_folder(url: str) -> None:
    """A fresh checkout has no data folder yet; SQLite will not create it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
