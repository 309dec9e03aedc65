"""Upload benchmark: concurrent 60 MB batch uploads against a real server, while /healthz is
polled and the server's memory sampled.

    .venv/bin/python bench/upload_bench.py [--uploads 4] [--megabytes 60] [--runs 3]
        [--baseline REV] [--postgres URL]

Each run starts `python -m app serve` on a fresh SQLite database (or, with --postgres, on a
database it may drop and create) with its batch workers off (so the figures are the
uploads', not the screening's), makes one tenant per upload, then sends the uploads at once
(NDJSON of realistic requests, each about 1.3 KB, up to 50,000 items) while a thread asks
/healthz every 50 ms and another reads the server's resident memory (VmRSS of the process
and its children) every 50 ms. Prints, per run and as medians over the runs: /healthz
latency (median, p99, max), the server's memory before and at its peak, the uploads' time
and statuses. With --baseline, the same runs of an earlier revision (its files taken with
`git archive`, run on this checkout's virtual environment) alternate with the current code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _upload_body(megabytes: int) -> bytes:
    from app.evaluate import load_cases

    bodies = [c["request"] for c in load_cases()]
    target = megabytes * 1024 * 1024
    per_item = max(1300, target // 50_000 + 1)
    lines: list[bytes] = []
    size = 0
    i = 0
    while size < target and i < 50_000:
        item = {**bodies[i % len(bodies)], "client_ref": f"case-{i}"}
        line = json.dumps(item, ensure_ascii=False).encode()
        room = per_item - len(line) - 30
        if room > 0:  # pad the free-text context (at most 8,000 characters) to the size
            padding = "Relatives were questioned after a public event. " * 40
            item["context"] = (item.get("context", "") + " " + padding[:room])[:8000]
            line = json.dumps(item, ensure_ascii=False).encode()
        lines.append(line)
        size += len(line) + 1
        i += 1
    return b"\n".join(lines) + b"\n"


def _rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its child processes, in KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _start(tree: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _one_run(tree: Path, body: bytes, uploads: int, postgres: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "DATA_DIR": data,
            "DATABASE_URL": f"sqlite:///{data}/app.db",
            "LOG_LEVEL": "WARNING",
            "BATCH_WORKER": "false",
            "BATCH_WORKER_PROCESSES": "0",
            "RATE_LIMIT_TOKEN_ADDRESS": "",
        }
        if postgres:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            url = make_url(postgres)
            admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            admin.dispose()
            env["DATABASE_URL"] = postgres
        run = [sys.executable, "-m", "app"]
        subprocess.run([*run, "migrate"], env=env, cwd=tree, check=True, capture_output=True)
        creds = [
            json.loads(
                subprocess.run(
                    [*run, "create-client", "--tenant", f"bench-{n}", "--admin", "--json"],
                    env=env,
                    cwd=tree,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for n in range(uploads)
        ]
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        proc = _start(tree, env, port)
        try:
            tokens = [
                httpx.post(
                    base + "/v1/auth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": c["client_id"],
                        "client_secret": c["client_secret"],
                    },
                ).json()["access_token"]
                for c in creds
            ]
            time.sleep(1)
            rss_before = _rss_kib(proc.pid)
            done = threading.Event()
            probes: list[float] = []
            rss: list[int] = []

            def probe() -> None:
                with httpx.Client(timeout=60) as c:
                    while not done.is_set():
                        t = time.perf_counter()
                        c.get(base + "/healthz")
                        probes.append(time.perf_counter() - t)
                        time.sleep(0.05)

            def sample() -> None:
                while not done.is_set():
                    rss.append(_rss_kib(proc.pid))
                    time.sleep(0.05)

            results: list[tuple[int, float]] = [(0, 0.0)] * uploads

            def upload(n: int) -> None:
                t = time.perf_counter()
                r = httpx.post(
                    base + "/v1/batches",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {tokens[n]}",
                        "Content-Type": "application/x-ndjson",
                    },
                    timeout=600,
                )
                results[n] = (r.status_code, time.perf_counter() - t)

            watchers = [threading.Thread(target=probe), threading.Thread(target=sample)]
            senders = [threading.Thread(target=upload, args=(n,)) for n in range(uploads)]
            for w in watchers:
                w.start()
            time.sleep(0.3)
            for s in senders:
                s.start()
            for s in senders:
                s.join()
            done.set()
            for w in watchers:
                w.join()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {
        "statuses": [s for s, _ in results],
        "upload_s_max": round(max(d for _, d in results), 2),
        "healthz_probes": len(probes),
        "healthz_median_ms": round(statistics.median(probes) * 1000, 1),
        "healthz_p99_ms": round(_percentile(probes, 0.99) * 1000, 1),
        "healthz_max_ms": round(max(probes) * 1000, 1),
        "rss_before_mb": round(rss_before / 1024),
        "rss_peak_mb": round(max(rss) / 1024),
    }


def _tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="an earlier git revision to run alternately")
    parser.add_argument("--postgres", help="a database URL it may drop and create")
    args = parser.parse_args()
    body = _upload_body(args.megabytes)
    items = body.count(b"\n")
    print(
        f"# {args.uploads} concurrent uploads of {len(body) / 1e6:.1f} MB "
        f"({items} items) each, {'PostgreSQL' if args.postgres else 'SQLite'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"current": ROOT}
        if args.baseline:
            trees = {"baseline": _tree(args.baseline, Path(tmp)), **trees}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for n in range(args.runs):
            for name, tree in trees.items():
                result = _one_run(tree, body, args.uploads, args.postgres)
                runs[name].append(result)
                print(f"run {n + 1} {name}: {json.dumps(result)}", flush=True)
    for name, results in runs.items():
        summary = {
            key: statistics.median(r[key] for r in results)
            for key in (
                "healthz_median_ms",
                "healthz_p99_ms",
                "healthz_max_ms",
                "rss_before_mb",
                "rss_peak_mb",
                "upload_s_max",
            )
        }
        print(f"median of {len(results)} runs, {name}: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
