"""Batch benchmark: a 10,000-item batch end to end (upload, completion, results downloaded).

    .venv/bin/python bench/batch_bench.py [--items 10000] [--postgres URL]

SQLite, in the same run: the server with only its worker thread (BATCH_WORKER_PROCESSES=0,
the baseline), then as it starts by default (its thread plus one worker process). With
--postgres (a database URL whose database may be dropped and created), also: the server with
no worker thread plus one, then two `python -m app worker` processes, to show how the work
scales. Prints items/s for each and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _requests(n: int) -> bytes:
    from app.evaluate import load_cases

    bodies = [c["request"] for c in load_cases()]
    lines = [json.dumps({**bodies[i % len(bodies)], "client_ref": f"case-{i}"}) for i in range(n)]
    return "\n".join(lines).encode()


def _call(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def _run(env: dict[str, str], port: int, workers: int, items: bytes, n: int) -> dict[str, float]:
    run = [sys.executable, "-m", "app"]
    subprocess.run([*run, "migrate"], env=env, check=True, capture_output=True, cwd=ROOT)
    creds = json.loads(
        subprocess.run(
            [*run, "create-client", "--tenant", "bench", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout
    )
    procs = [
        subprocess.Popen(
            [*run, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    procs += [
        subprocess.Popen([*run, "worker"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                _call(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        form = (
            f"grant_type=client_credentials&client_id={creds['client_id']}"
            f"&client_secret={creds['client_secret']}"
        ).encode()
        token = json.loads(_call(base + "/v1/auth/token", data=form))["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        start = time.perf_counter()
        status = json.loads(
            _call(
                base + "/v1/batches",
                data=items,
                headers={**auth, "Content-Type": "application/x-ndjson"},
            )
        )
        uploaded = time.perf_counter()
        while status["state"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.05)
            status = json.loads(_call(f"{base}/v1/batches/{status['id']}", headers=auth))
        completed = time.perf_counter()
        body = _call(
            f"{base}/v1/batches/{status['id']}/results",
            headers={**auth, "Accept": "application/x-ndjson"},
        )
        end = time.perf_counter()
        lines = body.count(b"\n")
        assert lines == n, f"{lines} results for {n} items"
        assert status["counts"]["done"] + status["counts"]["invalid"] == n, status["counts"]
        return {
            "items": n,
            "upload_s": round(uploaded - start, 2),
            "screening_s": round(completed - uploaded, 2),
            "download_s": round(end - completed, 2),
            "total_s": round(end - start, 2),
            "items_per_s": round(n / (end - start), 1),
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--postgres", help="e.g. postgresql+psycopg://postgres@127.0.0.1/bench")
    args = parser.parse_args()
    items = _requests(args.items)
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="batchbench"))
    base_env = {
        **os.environ,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_CLIENT": "",
        "RATE_LIMIT_TENANT": "",
    }
    for label, processes in (("sqlite_thread_only", "0"), ("sqlite_default", "1")):
        env = {
            **base_env,
            "DATA_DIR": str(tmp / label),
            "DATABASE_URL": f"sqlite:///{tmp}/{label}.db",
            "BATCH_WORKER_PROCESSES": processes,
        }
        results[label] = _run(env, 8809 + int(processes), 0, items, args.items)
    results["sqlite_default_vs_thread_only"] = round(
        results["sqlite_default"]["items_per_s"] / results["sqlite_thread_only"]["items_per_s"], 2
    )
    if args.postgres:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        url = make_url(args.postgres)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        for workers in (1, 2):
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            env = {
                **base_env,
                "DATA_DIR": str(tmp / f"p{workers}"),
                "DATABASE_URL": args.postgres,
                "BATCH_WORKER": "false",
                "BATCH_WORKER_PROCESSES": "0",
            }
            results[f"postgres_{workers}_worker_processes"] = _run(
                env, 8812 + workers, workers, items, args.items
            )
        admin.dispose()
        one = results["postgres_1_worker_processes"]["screening_s"]
        two = results["postgres_2_worker_processes"]["screening_s"]
        results["postgres_scaling_2_vs_1_workers"] = round(one / two, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
