"""What `make run` does on a fresh checkout: migrate into a data folder that does not exist."""

from __future__ import annotations

from pathlib import Path

from app import migrate


def test_migrate_creates_the_sqlite_folder(tmp_path: Path) -> None:
    target = tmp_path / "not" / "yet" / "there.db"
    migrate.upgrade(f"sqlite:///{target}")
    assert target.exists()
