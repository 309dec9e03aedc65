"""The baseline for the API benchmark: the fastest endpoint we could write on the same stack
that validates the same body and inserts one row into the same kind of database.

    DATABASE_URL=sqlite:///... uvicorn bench.bare_app:app
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Response
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    insert,
)

from app.crypto import aad, new_key, seal
from app.db import create_database
from app.engine import ScreeningInput, screen
from app.kb.loader import load as load_kb

# The same database setup as the service's, checkpointing in the background included.
db = create_database(os.environ["DATABASE_URL"], background_checkpoint=True)
metadata = MetaData()
rows = Table(
    "bare_rows",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("flag", String(16), nullable=False),
)
metadata.create_all(db.writer)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    db.start()
    yield
    db.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/bare", status_code=201)
async def bare(body: ScreeningInput) -> dict[str, str]:
    ident = uuid.uuid4()
    with db.writer.begin() as conn:  # inline, on the event loop: the fastest variant measured
        conn.execute(
            insert(rows).values(
                id=ident, created_at=datetime.now(UTC), body=body.model_dump_json(), flag="low"
            )
        )
    return {"id": str(ident)}


# The floor for any screening endpoint: the baseline plus the work the contract itself requires
# (screen, serialise the result, store it, return it) and nothing else: no authentication, no
# middleware, no audit row. It bounds from above what POST /v1/screenings could reach.
kb = load_kb()
results = Table(
    "bare_results",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("result", Text, nullable=False),
)
metadata.create_all(db.writer)


@app.post("/bare-screen", status_code=201)
async def bare_screen(body: ScreeningInput) -> Response:
    ident = uuid.uuid4()
    result = screen(body, kb).model_dump_json()
    with db.writer.begin() as conn:
        conn.execute(
            insert(results).values(
                id=ident, created_at=datetime.now(UTC), body=body.model_dump_json(), result=result
            )
        )
    return Response(content=result, status_code=201, media_type="application/json")


# The floor as the contract stands now that personal data is sealed at rest: the same work plus
# what sealing itself requires, done the way the service does it (app.crypto): a fresh key per
# screening, wrapped by a tenant key with associated data naming tenant, object and version,
# stored in its own row; request and result sealed with AES-256-GCM under it, with associated
# data naming tenant, table, column and row. Still no authentication, middleware, audit row,
# idempotency or key lookup in the database (the tenant key is held in memory).
TENANT = uuid.uuid4()
TENANT_KEY = new_key()
sealed_keys = Table(
    "bare_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("tenant_key_version", Integer, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
sealed_results = Table(
    "bare_sealed_results",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("flag", String(16), nullable=False),
    Column("request_sealed", LargeBinary, nullable=False),
    Column("result_sealed", LargeBinary, nullable=False),
)
metadata.create_all(db.writer)


@app.post("/bare-screen-sealed", status_code=201)
async def bare_screen_sealed(body: ScreeningInput) -> Response:
    ident = uuid.uuid4()
    outcome = screen(body, kb)
    result = outcome.model_dump_json()
    key = new_key()
    now = datetime.now(UTC)
    with db.writer.begin() as conn:
        conn.execute(
            insert(sealed_keys).values(
                id=ident,
                tenant_id=TENANT,
                tenant_key_version=1,
                wrapped_key=seal(TENANT_KEY, key, aad("subject-key", TENANT, ident, 1)),
                created_at=now,
            )
        )
        conn.execute(
            insert(sealed_results).values(
                id=ident,
                tenant_id=TENANT,
                created_at=now,
                flag=outcome.flag,
                request_sealed=seal(
                    key,
                    body.model_dump_json().encode(),
                    aad(TENANT, "screenings", "request", ident),
                ),
                result_sealed=seal(
                    key, result.encode(), aad(TENANT, "screenings", "result", ident)
                ),
            )
        )
    return Response(content=result, status_code=201, media_type="application/json")
