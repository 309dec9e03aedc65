"""API benchmark: POST /v1/screenings against the bare baseline and the floors
(bench/bare_app.py), each served by one uvicorn process on loopback, loaded by wrk with 32
connections, in alternating rounds so machine noise hits all alike.

    .venv/bin/python bench/api_bench.py [--rounds 5] [--seconds 10] [--standard]
    .venv/bin/python bench/api_bench.py --workers-scaling postgresql+psycopg://...

Needs wrk (Debian package `wrk`). Prints requests/s and p99 latency medians and the ratios to
the baseline and to the sealed floor (the service's target: at least 0.80 of it).

``--standard`` also serves the service with uvloop and httptools (uvicorn's ``standard``
extra, which must be installed) beside the default asyncio loop and h11, in the same rounds.

``--workers-scaling URL`` instead runs ``python -m app serve --workers 1`` and then
``--workers 2`` on that PostgreSQL database (dropped and created), alternately, and prints
the requests/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = {
    "subject": {
        "ethnicity": "Uyghur",
        "occupation": "writer",
        "nationalities": ["CN"],
        "profile_tags": ["activist"],
        "refugee_status": {"status": "recognised", "granted_by": "DE", "year": 2017},
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "CN",
        "issued_date": "2018",
        "charges": "组织、领导、参加恐怖组织罪 (participating in a terrorist organisation)",
        "legal_provisions": ["Article 120 of the Criminal Law of the PRC"],
    },
    "context": "Relatives were questioned after the client spoke at a public event abroad.",
}


def _wait(url: str) -> None:
    for _ in range(900):  # a start-up takes 10 s and more with other servers starting
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


def _serve(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


def _wrk(url: str, script: Path, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} non-2xx responses from {url}")
    return rps, float(p99.group(1)) * scale


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--standard", action="store_true", help="also uvloop and httptools")
    parser.add_argument("--variants", action="store_true", help="also the engine on the event loop")
    parser.add_argument("--workers-scaling", metavar="URL", help="serve --workers 1 vs 2")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if args.workers_scaling:
        workers_scaling(args.workers_scaling, args.rounds, args.seconds)
        return

    tmp = Path(tempfile.mkdtemp(prefix="apibench"))
    # Rate limits off: the benchmark measures throughput, not the limiter's refusals.
    env = {
        **os.environ,
        "DATA_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp}/app.db",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_CLIENT": "",
        "RATE_LIMIT_TENANT": "",
    }
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    created = subprocess.run(
        [sys.executable, "-m", "app", "create-client", "--tenant", "bench", "--json"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    creds = json.loads(created)
    default_loop = ["--loop", "asyncio", "--http", "h11"]
    app = _serve(["app.main:create_app", "--factory", *default_loop], env, 8801)
    bare = _serve(
        ["bench.bare_app:app", *default_loop],
        {**env, "DATABASE_URL": f"sqlite:///{tmp}/bare.db"},
        8802,
    )
    servers = [app, bare]
    if args.standard:  # the same database file: both service processes write to it
        servers.append(
            _serve(
                ["app.main:create_app", "--factory", "--loop", "uvloop", "--http", "httptools"],
                env,
                8803,
            )
        )
    if args.variants:
        servers.append(
            _serve(["bench.inline_app:create_app", "--factory", *default_loop], env, 8804)
        )
    try:
        _wait("http://127.0.0.1:8801/healthz")
        _wait("http://127.0.0.1:8802/docs")
        if args.standard:
            _wait("http://127.0.0.1:8803/healthz")
        if args.variants:
            _wait("http://127.0.0.1:8804/healthz")
        form = (
            f"grant_type=client_credentials&client_id={creds['client_id']}"
            f"&client_secret={creds['client_secret']}"
        ).encode()
        with urllib.request.urlopen("http://127.0.0.1:8801/v1/auth/token", data=form) as r:
            token = json.loads(r.read())["access_token"]
        body_file = tmp / "body.json"  # Lua reads it from a file: no string escaping to get wrong
        body_file.write_text(json.dumps(BODY, ensure_ascii=False), encoding="utf-8")
        scripts = {}
        for name, auth in (
            ("app", f'wrk.headers["Authorization"] = "Bearer {token}"\n'),
            ("bare", ""),
        ):
            script = tmp / f"{name}.lua"
            script.write_text(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                + auth
                + f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n',
                encoding="utf-8",
            )
            scripts[name] = script
        # name -> (url, script). "floor" is the least any screening endpoint must do (see
        # bench/bare_app.py); "app_no_store" is the service with ?store=false.
        targets = {
            "bare": ("http://127.0.0.1:8802/bare", scripts["bare"]),
            "app": ("http://127.0.0.1:8801/v1/screenings", scripts["app"]),
            "floor": ("http://127.0.0.1:8802/bare-screen", scripts["bare"]),
            "floor_sealed": ("http://127.0.0.1:8802/bare-screen-sealed", scripts["bare"]),
            "app_no_store": ("http://127.0.0.1:8801/v1/screenings?store=false", scripts["app"]),
        }
        if args.variants:
            targets["app_engine_on_loop"] = ("http://127.0.0.1:8804/v1/screenings", scripts["app"])
        if args.standard:
            targets["app_uvloop_httptools"] = (
                "http://127.0.0.1:8803/v1/screenings",
                scripts["app"],
            )
        for url, script in targets.values():  # warm-up
            _wrk(url, script, 2)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, script) in targets.items():
                results[name].append(_wrk(url, script, args.seconds))
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    summary: dict[str, object] = {}
    for name, rows in results.items():
        summary[name] = {
            "rps_rounds": [round(r, 1) for r, _ in rows],
            "rps_median": round(statistics.median(r for r, _ in rows), 1),
            "p99_ms_median": round(statistics.median(p for _, p in rows), 2),
        }
    bare_rps = statistics.median(r for r, _ in results["bare"])
    summary["ratios_to_bare"] = {
        name: round(statistics.median(r for r, _ in rows) / bare_rps, 3)
        for name, rows in results.items()
        if name != "bare"
    }
    floor_rps = statistics.median(r for r, _ in results["floor_sealed"])
    summary["ratios_to_sealed_floor"] = {
        name: round(statistics.median(r for r, _ in rows) / floor_rps, 3)
        for name, rows in results.items()
        if name.startswith("app")
    }
    summary["ratio_per_round_app_to_sealed_floor"] = [
        round(a / f, 3)
        for (a, _), (f, _) in zip(results["app"], results["floor_sealed"], strict=True)
    ]
    print(json.dumps(summary, indent=2))


def workers_scaling(url: str, rounds: int, seconds: int) -> None:
    """POST /v1/screenings on PostgreSQL: `serve --workers 1` against `--workers 2`."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    tmp = Path(tempfile.mkdtemp(prefix="apibench"))
    env = {
        **os.environ,
        "DATA_DIR": str(tmp),
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_CLIENT": "",
        "RATE_LIMIT_TENANT": "",
        "BATCH_WORKER_PROCESSES": "0",
    }
    run = [sys.executable, "-m", "app"]
    subprocess.run([*run, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    creds = json.loads(
        subprocess.run(
            [*run, "create-client", "--tenant", "bench", "--json"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    body_file = tmp / "body.json"
    body_file.write_text(json.dumps(BODY, ensure_ascii=False), encoding="utf-8")
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for _ in range(rounds):
        for workers in (1, 2):
            proc = subprocess.Popen(
                [*run, "serve", "--host", "127.0.0.1", "--port", "8811", "--workers", str(workers)],
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
            try:
                _wait("http://127.0.0.1:8811/readyz")
                form = (
                    f"grant_type=client_credentials&client_id={creds['client_id']}"
                    f"&client_secret={creds['client_secret']}"
                ).encode()
                with urllib.request.urlopen("http://127.0.0.1:8811/v1/auth/token", data=form) as r:
                    token = json.loads(r.read())["access_token"]
                script = tmp / "app.lua"
                script.write_text(
                    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {token}"\n'
                    f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\n'
                    "f:close()\n",
                    encoding="utf-8",
                )
                _wrk("http://127.0.0.1:8811/v1/screenings", script, 2)  # warm-up
                results[workers].append(
                    _wrk("http://127.0.0.1:8811/v1/screenings", script, seconds)
                )
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    summary: dict[str, object] = {
        f"workers_{w}": {
            "rps_rounds": [round(r, 1) for r, _ in rows],
            "rps_median": round(statistics.median(r for r, _ in rows), 1),
            "p99_ms_median": round(statistics.median(p for _, p in rows), 2),
        }
        for w, rows in results.items()
    }
    summary["ratio_2_to_1"] = round(
        statistics.median(r for r, _ in results[2]) / statistics.median(r for r, _ in results[1]),
        3,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
