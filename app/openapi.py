"""The exported OpenAPI document (``openapi/openapi.json``), kept in sync by a test."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from app.settings import Settings

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def export(settings: Settings | None = None) -> str:
    from app.db import create_database
    from app.main import create_app

    # The spec depends on neither the database nor the keys: use throwaway ones, so exporting
    # writes nothing.
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings or Settings(data_dir=Path(tmp))
        app = create_app(settings, database=create_database("sqlite://"))
        spec = app.openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
