"""``python -m app``: serve, migrate, manage tenants, clients and keys, back up, purge, check
the knowledge base."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlmodel import Session, select

from app.auth import (
    ALL_SCOPES,
    DEFAULT_SCOPES,
    OPERATOR_ONLY,
    OPERATOR_SCOPES,
    OPERATOR_TENANT,
    TENANT_SCOPES,
    SecretHasher,
    hash_secret,
    new_client_id,
    new_client_secret,
)
from app.models import Client, Tenant, utcnow
from app.settings import Settings

LOCAL_TENANT = "local"
LOCAL_ADMIN_NAME = "local-admin"
TENANT_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


class CliError(Exception):
    pass


def _db(settings: Settings, *, background_checkpoint: bool = False):  # type: ignore[no-untyped-def]
    from app.db import create_database

    return create_database(
        settings.effective_database_url,
        background_checkpoint=background_checkpoint,
        pool_timeout=settings.db_pool_timeout_seconds,
    )


def _hasher(settings: Settings) -> SecretHasher:
    return SecretHasher(settings.master_key_bytes())


def _tenant(session: Session, name: str, *, create: bool) -> Tenant:
    if not TENANT_RE.fullmatch(name):
        raise CliError("tenant names are 2-63 characters: lower-case letters, digits and '-'")
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        if not create:
            raise CliError(f"no tenant named {name!r}")
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_client(
    session: Session,
    *,
    tenant: str,
    scopes: Sequence[str],
    name: str = "",
    hasher: SecretHasher | None = None,
    operator: bool = False,
) -> tuple[Client, str]:
    """A new client and its secret, hashed with ``hasher`` (HMAC-SHA-256 under the pepper);
    without one, as a legacy Argon2id hash that the token endpoint replaces on first use.
    ``operator``: a client of the operator tenant, the only one that may hold
    ``knowledge:admin`` and which holds no scope over tenants' data."""
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise CliError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
    if operator:
        tenant = OPERATOR_TENANT
        if not set(scopes) <= set(OPERATOR_SCOPES):
            raise CliError(f"an operator client holds only {' '.join(OPERATOR_SCOPES)}")
    elif set(scopes) & OPERATOR_ONLY:
        raise CliError("knowledge:admin is granted only to operator clients (--operator)")
    elif tenant == OPERATOR_TENANT:
        raise CliError(f"the tenant {OPERATOR_TENANT!r} holds operator clients only (--operator)")
    owner = _tenant(session, tenant, create=True)
    secret = new_client_secret()
    client_id = new_client_id()
    client = Client(
        tenant_id=owner.id,
        client_id=client_id,
        secret_hash=(
            hasher.hash(secret, client_id=client_id) if hasher is not None else hash_secret(secret)
        ),
        scopes=sorted(set(scopes)),
        name=name[:64],
    )
    session.add(client)
    session.flush()
    return client, secret


def _print_credentials(client: Client, secret: str, tenant: str, *, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "client_id": client.client_id,
                    "client_secret": secret,
                    "tenant": tenant,
                    "scopes": list(client.scopes),
                }
            )
        )
        return
    print(f"client_id:     {client.client_id}")
    print(f"client_secret: {secret}")
    print(f"tenant:        {tenant}")
    print(f"scopes:        {' '.join(client.scopes)}")
    print("The secret is shown only now; it is stored as a hash.")


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from app import migrate

    migrate.upgrade(settings.effective_database_url)
    print("database migrated to", migrate.head_revision())
    return 0


def cmd_create_tenant(settings: Settings, args: argparse.Namespace) -> int:
    with _db(settings).session() as session:
        existing = session.exec(select(Tenant).where(Tenant.name == args.name)).first()
        if existing is not None:
            raise CliError(f"tenant {args.name!r} exists already")
        _tenant(session, args.name, create=True)
    print(f"tenant {args.name} created")
    return 0


def cmd_create_client(settings: Settings, args: argparse.Namespace) -> int:
    if args.operator:
        if args.admin or args.tenant:
            raise CliError("--operator takes neither --admin nor --tenant")
        scopes = args.scopes or list(OPERATOR_SCOPES)
    elif not args.tenant:
        raise CliError("--tenant is required (or --operator)")
    else:
        scopes = list(TENANT_SCOPES) if args.admin else (args.scopes or list(DEFAULT_SCOPES))
    with _db(settings).session() as session:
        client, secret = create_client(
            session,
            tenant=args.tenant or OPERATOR_TENANT,
            scopes=scopes,
            name=args.name,
            hasher=_hasher(settings),
            operator=args.operator,
        )
    _print_credentials(client, secret, args.tenant or OPERATOR_TENANT, as_json=args.json)
    return 0


def cmd_rotate_secret(settings: Settings, args: argparse.Namespace) -> int:
    with _db(settings).session() as session:
        client = session.exec(select(Client).where(Client.client_id == args.client_id)).first()
        if client is None:
            raise CliError("no such client")
        tenant = session.get(Tenant, client.tenant_id)
        secret = new_client_secret()
        client.secret_hash = _hasher(settings).hash(secret, client_id=client.client_id)
        client.secret_rotated_at = utcnow()
        session.add(client)
    _print_credentials(client, secret, tenant.name if tenant else "?", as_json=args.json)
    print(
        "Tokens issued before the rotation stay valid until they expire "
        f"(at most {settings.token_ttl_seconds} s).",
        file=sys.stderr,
    )
    return 0


def _client_by_id(session: Session, client_id: str) -> Client:
    client = session.exec(select(Client).where(Client.client_id == client_id)).first()
    if client is None:
        raise CliError("no such client")
    return client


def cmd_disable_client(settings: Settings, args: argparse.Namespace) -> int:
    from app import revocation

    with _db(settings).session() as session:
        revocation.disable(session, _client_by_id(session, args.client_id), actor="system:cli")
    print(
        f"client {args.client_id} disabled: it gets no new tokens, and the ones it holds are "
        f"refused within {revocation.TTL_S:g} s on every server process"
    )
    return 0


def cmd_delete_client(settings: Settings, args: argparse.Namespace) -> int:
    from app import revocation

    with _db(settings).session() as session:
        revocation.delete(session, _client_by_id(session, args.client_id), actor="system:cli")
    print(
        f"client {args.client_id} deleted: the tokens it holds are refused within "
        f"{revocation.TTL_S:g} s on every server process"
    )
    return 0


def cmd_bootstrap_local(settings: Settings, _: argparse.Namespace) -> int:
    """Make sure the local admin client exists; print its secret only when it is created."""
    with _db(settings).session() as session:
        tenant = session.exec(select(Tenant).where(Tenant.name == LOCAL_TENANT)).first()
        existing = None
        if tenant is not None:
            existing = session.exec(
                select(Client).where(Client.tenant_id == tenant.id, Client.name == LOCAL_ADMIN_NAME)
            ).first()
        if existing is not None:
            print(f"Local admin client: {existing.client_id} (tenant {LOCAL_TENANT}).")
            print("Its secret was shown when it was created. For a new one:")
            print(f"  .venv/bin/python -m app rotate-secret --client-id {existing.client_id}")
            return 0
        client, secret = create_client(
            session,
            tenant=LOCAL_TENANT,
            scopes=TENANT_SCOPES,
            name=LOCAL_ADMIN_NAME,
            hasher=_hasher(settings),
        )
    print("=" * 72)
    print("Local admin client created. Use these in Swagger UI's Authorize button:")
    _print_credentials(client, secret, LOCAL_TENANT, as_json=False)
    print("=" * 72)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.observability import configure_logging

    configure_logging(settings.log_level)
    workers = _start_batch_workers(settings.batch_worker_processes)
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            proxy_headers=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=20,
        )
    finally:
        _stop_batch_workers(workers)
    return 0


def _start_batch_workers(n: int) -> list[subprocess.Popen[bytes]]:
    """``python -m app worker`` processes beside the server, so batches use every core (the
    server's own worker thread shares one interpreter with the event loop). Each stops with
    the server, and on its own if the server dies (it watches its parent)."""
    me = str(os.getpid())
    return [
        subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "app", "worker", "--name", f"serve-{me}-{i}", "--parent", me]
        )
        for i in range(n)
    ]


def _stop_batch_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        proc.terminate()  # SIGTERM: the chunk in hand is finished and stored
    for proc in workers:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # its claims expire and are taken again
            proc.kill()
            proc.wait()


def cmd_openapi(settings: Settings, _: argparse.Namespace) -> int:
    from app.openapi import export

    print(export(settings))
    return 0


def cmd_kb(settings: Settings, args: argparse.Namespace) -> int:
    from app.kb.loader import KnowledgeBaseError, load

    try:
        kb = load()
    except KnowledgeBaseError as exc:
        print(f"knowledge base invalid: {exc}", file=sys.stderr)
        return 1
    if args.kb_command == "validate":
        print(f"knowledge base {kb.version} valid; sha256 {kb.sha256}")
        return 0
    print(f"knowledge base {kb.version}  sha256 {kb.sha256}")
    for kind, n in kb.counts().items():
        print(f"  {kind:<20}{n:>6}")
    per_country: Counter[str] = Counter()
    for p in kb.provisions.values():
        per_country[f"{p.jurisdiction} provisions"] += 1
    for c in kb.cases.values():
        per_country[f"{c.country} cases"] += 1
    print("per country:")
    for iso2 in sorted(kb.countries):
        level = kb.countries[iso2].documentation_level.value
        print(
            f"  {iso2}  documentation={level:<9}provisions={per_country[f'{iso2} provisions']:<4}"
            f"cases={per_country[f'{iso2} cases']}"
        )
    return 0


def cmd_kb_bundle(settings: Settings, args: argparse.Namespace) -> int:
    """A release directory as the body of ``POST /v1/knowledge/releases``, validated first."""
    from app.kb.loader import DATA_DIR, KnowledgeBaseError, load_files, read_files

    try:
        files = read_files(Path(args.dir) if args.dir else DATA_DIR)
        kb = load_files(files)
    except KnowledgeBaseError as exc:
        print(f"knowledge base invalid: {exc}", file=sys.stderr)
        return 1
    text = json.dumps({"files": files}, ensure_ascii=False, default=str, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    print(f"release {kb.version} sha256 {kb.sha256}", file=sys.stderr)
    return 0


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:

    from app.evaluate import evaluate, evaluate_ablation, evaluate_all, load_cases, split_of
    from app.kb.loader import load

    cases = load_cases(Path(args.file) if args.file else None)
    if args.split == "dev":  # what weights may be tuned on: the holdout stays unseen
        kb, dev = load(), [c for c in cases if split_of(c["id"]) == "dev"]
        print(evaluate(kb, dev).render("dev"))
        print()
        print(
            evaluate_ablation(kb, dev).render("ablation, dev: own state's detailed profile removed")
        )
        return 0
    if args.split == "none":  # e.g. a set collected after the weights were frozen
        kb = load()
        print(evaluate(kb, cases).render("every case"))
        print()
        print(evaluate_ablation(kb, cases).render("ablation: own state's detailed profile removed"))
        return 0
    print(evaluate_all(load(), cases).render())
    return 0


def _sqlite_path(settings: Settings) -> Path:
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        raise CliError(
            "backup and restore here are for SQLite files; for PostgreSQL use pg_dump as "
            "docs/operations.md describes"
        )
    assert url.database is not None
    return Path(url.database)


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from app.backup import BackupError, backup

    try:
        report = backup(
            _sqlite_path(settings),
            Path(args.path),
            keys_dest=Path(args.keys) if args.keys else None,
        )
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(
        f"backup written: {report.screenings} screenings, no keys"
        + (
            f"; keys ({report.tenant_keys} tenant, {report.subject_keys} subject) "
            "written separately: keep them apart and delete them soon"
            if args.keys
            else ""
        )
    )
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from app.backup import BackupError, restore

    try:
        report = restore(
            Path(args.path), _sqlite_path(settings), keys=Path(args.keys) if args.keys else None
        )
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(
        f"restored {report.screenings} screenings: {report.readable} readable, "
        f"{report.unreadable} without a key (erased since the backup)"
    )
    return 0


def cmd_purge(settings: Settings, _: argparse.Namespace) -> int:
    from app.retention import purge

    db = _db(settings)
    try:
        purged = purge(db)
    finally:
        db.dispose()
    total = sum(purged.values())
    print(f"purged {total} screenings past their tenant's retention period")
    for name, n in sorted(purged.items()):
        print(f"  {name}: {n}")
    return 0


def cmd_set_retention(settings: Settings, args: argparse.Namespace) -> int:
    from app.models import MAX_RETENTION_DAYS

    if not 1 <= args.days <= MAX_RETENTION_DAYS:
        raise CliError(f"retention is 1 to {MAX_RETENTION_DAYS} days")
    db = _db(settings)
    try:
        with db.session() as session:
            tenant = _tenant(session, args.tenant, create=False)
            tenant.retention_days = args.days
            session.add(tenant)
    finally:
        db.dispose()
    print(f"tenant {args.tenant}: screenings are kept {args.days} days")
    return 0


def cmd_rotate_keys(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from app.crypto import parse_master_key
    from app.keys import KeyRing

    keys = KeyRing(settings.master_key_bytes())
    db = _db(settings)
    try:
        if args.new_master_key_file:
            try:
                new_master = parse_master_key(Path(args.new_master_key_file).read_text("ascii"))
            except (OSError, ValueError) as exc:
                raise CliError(f"new master key: {exc}") from None
            with db.session() as session:
                n = keys.rewrap_master(session, new_master)
            print(
                f"re-wrapped {n} tenant keys under the new master key: configure it "
                "(MASTER_KEY_FILE) and restart every process now; the old one no longer opens them"
            )
            return 0
        with db.session(write=False) as session:
            query = select(Tenant)
            if args.tenant:
                query = query.where(Tenant.name == args.tenant)
            tenants = [(t.id, t.name) for t in session.exec(query).all()]
        if args.tenant and not tenants:
            raise CliError(f"no tenant named {args.tenant!r}")
        for tenant_id, name in tenants:
            try:
                with db.session() as session:
                    version, n = keys.rotate_tenant(session, tenant_id)
            except IntegrityError:
                raise CliError(
                    f"tenant {name}: a screening was stored with the old key while rotating; "
                    "nothing was changed for this tenant, run the command again"
                ) from None
            print(f"tenant {name}: key version {version}, {n} screening keys re-wrapped")
    finally:
        db.dispose()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import signal

    from app.batches import run_worker
    from app.kb.loader import load
    from app.keys import KeyRing
    from app.observability import configure_logging
    from app.releases import Releases

    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.parent is not None:
        threading.Thread(target=_watch_parent, args=(args.parent, stop), daemon=True).start()
    # Like the server: the SQLite WAL is checkpointed by a thread, not inside the commits.
    db = _db(settings, background_checkpoint=True)
    db.start()
    try:
        releases = Releases(load(), db, refresh_seconds=settings.kb_refresh_seconds)
        releases.store_builtin()
        releases.refresh()
        keys = KeyRing(settings.master_key_bytes())
        run_worker(db, releases, keys, stop, worker=args.name)
    finally:
        db.dispose()
    return 0


def _watch_parent(parent: int, stop: threading.Event) -> None:
    """Stop when the process that started this worker is gone (re-parented)."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


_SCREEN_TYPES = {
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
}


def cmd_screen(settings: Settings, args: argparse.Namespace) -> int:
    """Screen a file locally: no server, no database, nothing stored."""
    import csv

    from app.batch_io import UploadError, parse
    from app.engine import screen
    from app.kb.loader import load

    source = Path(args.file)
    media = _SCREEN_TYPES.get(source.suffix.lower())
    if media is None:
        raise CliError("the file must end in .json, .ndjson, .jsonl or .csv")
    try:
        items = parse(source.read_bytes(), media)
    except (OSError, UploadError) as exc:
        raise CliError(str(exc)) from None
    kb = load()
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout  # noqa: SIM115
    as_csv = bool(args.out) and args.out.lower().endswith(".csv")
    writer = csv.writer(out) if as_csv else None
    if writer is not None:
        writer.writerow(
            ["row", "client_ref", "state", "flag", "score", "top_indicators", "problems"]
        )
    flags: Counter[str] = Counter()
    try:
        for n, item in enumerate(items, start=1):
            record: dict[str, object] = {"row": item.row, "client_ref": item.client_ref}
            if item.request is None:
                record |= {
                    "state": "invalid",
                    "problems": [{"field": p.field, "problem": p.problem} for p in item.problems],
                }
            else:
                result = screen(item.request, kb)
                top = sorted(result.indicators, key=lambda i: -i.points)[:3]
                record |= {
                    "state": "done",
                    "flag": result.flag.value,
                    "score": result.score,
                    "top_indicators": [i.code for i in top],
                }
                flags[result.flag.value] += 1
            if writer is not None:
                writer.writerow(
                    [
                        record["row"],
                        record["client_ref"] or "",
                        record["state"],
                        record.get("flag", ""),
                        record.get("score", ""),
                        ";".join(record.get("top_indicators", [])),  # type: ignore[arg-type]
                        json.dumps(record.get("problems", ""), ensure_ascii=False)
                        if record.get("problems")
                        else "",
                    ]
                )
            else:
                print(json.dumps(record, ensure_ascii=False), file=out)
            if args.out and (n % 100 == 0 or n == len(items)):
                width = 30
                done = width * n // len(items)
                bar = "#" * done + "." * (width - done)
                print(f"\r[{bar}] {n}/{len(items)}", end="", file=sys.stderr, flush=True)
    finally:
        if args.out:
            out.close()
    if args.out:
        invalid = sum(1 for i in items if i.request is None)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(flags.items()))
        print(
            f"\n{len(items)} items: {summary or 'none screened'}; {invalid} invalid",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    tenant = sub.add_parser("create-tenant", help="create a tenant")
    tenant.add_argument("name")
    tenant.set_defaults(func=cmd_create_tenant)

    client = sub.add_parser("create-client", help="create an API client (and its tenant)")
    client.add_argument("--tenant", help="the tenant (created if new); not with --operator")
    client.add_argument(
        "--admin", action="store_true", help="grant every scope over the tenant's data"
    )
    client.add_argument(
        "--operator",
        action="store_true",
        help="an operator client (no tenant's data): knowledge:read and knowledge:admin, "
        "the power to upload and activate knowledge-base releases for every tenant",
    )
    client.add_argument(
        "--scopes",
        nargs="+",
        choices=ALL_SCOPES,
        metavar="SCOPE",
        help=f"scopes to grant (default: {' '.join(DEFAULT_SCOPES)})",
    )
    client.add_argument("--name", default="", help="a label for the client")
    client.add_argument("--json", action="store_true", help="print one JSON line")
    client.set_defaults(func=cmd_create_client)

    rotate = sub.add_parser("rotate-secret", help="give a client a new secret")
    rotate.add_argument("--client-id", required=True)
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_rotate_secret)

    for name, func, what in (
        ("disable-client", cmd_disable_client, "disable a client and refuse its tokens"),
        ("delete-client", cmd_delete_client, "delete a client and refuse its tokens"),
    ):
        revoke = sub.add_parser(name, help=what)
        revoke.add_argument("client_id", help="the client's client_id (cl_...)")
        revoke.set_defaults(func=func)

    sub.add_parser("bootstrap-local", help="ensure the local admin client exists").set_defaults(
        func=cmd_bootstrap_local
    )
    sub.add_parser("openapi", help="print the OpenAPI document").set_defaults(func=cmd_openapi)

    ev = sub.add_parser("evaluate", help="score the labelled evaluation set and print metrics")
    ev.add_argument(
        "--file", help="a YAML file of labelled cases (default: every tests/eval/*.yaml)"
    )
    ev.add_argument(
        "--split",
        choices=["dev", "all", "none"],
        default="all",
        help=(
            "dev: only the split weights may be tuned on; all: dev, holdout, ablation and "
            "gate; none: every case of --file as one set, and its ablation"
        ),
    )
    ev.set_defaults(func=cmd_evaluate)

    sc = sub.add_parser("screen", help="screen a JSON, NDJSON or CSV file locally (no server)")
    sc.add_argument("file", help="a .json (array), .ndjson/.jsonl or .csv file")
    sc.add_argument("--out", help="write results here (.csv for CSV, else NDJSON); default stdout")
    sc.set_defaults(func=cmd_screen)

    wk = sub.add_parser("worker", help="screen batch items until stopped (SIGTERM or Ctrl-C)")
    wk.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # set by `serve`
    wk.add_argument("--name", help="a name for this worker in the claims (default: random)")
    wk.set_defaults(func=cmd_worker)

    bk = sub.add_parser("backup", help="back up the SQLite database (without keys)")
    bk.add_argument("path", help="the backup file to write (must not exist)")
    bk.add_argument("--keys", help="also write the snapshot's keys to this separate file")
    bk.set_defaults(func=cmd_backup)

    rs = sub.add_parser("restore", help="restore a SQLite backup (stop the server first)")
    rs.add_argument("path", help="a file written by `backup`")
    rs.add_argument("--keys", help="a keys file written by `backup --keys` (default: live keys)")
    rs.set_defaults(func=cmd_restore)

    sub.add_parser(
        "purge", help="purge screenings past their tenant's retention period"
    ).set_defaults(func=cmd_purge)

    ret = sub.add_parser("set-retention", help="set a tenant's retention period")
    ret.add_argument("tenant")
    ret.add_argument("days", type=int)
    ret.set_defaults(func=cmd_set_retention)

    rk = sub.add_parser(
        "rotate-keys", help="new tenant key versions (or re-wrap under a new master key)"
    )
    rk.add_argument("--tenant", help="only this tenant (default: every tenant)")
    rk.add_argument(
        "--new-master-key-file", help="re-wrap every tenant key under the master key in this file"
    )
    rk.set_defaults(func=cmd_rotate_keys)

    kb = sub.add_parser("kb", help="knowledge-base tools")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_sub.add_parser("validate", help="validate the data files").set_defaults(func=cmd_kb)
    kb_sub.add_parser("stats", help="counts per kind and per country").set_defaults(func=cmd_kb)
    bundle = kb_sub.add_parser(
        "bundle", help="write a release directory as an upload for POST /v1/knowledge/releases"
    )
    bundle.add_argument("dir", nargs="?", help="the release directory (default: the built-in)")
    bundle.add_argument("--out", help="write here instead of standard output")
    bundle.set_defaults(func=cmd_kb_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        result: int = args.func(settings, args)
        return result
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
