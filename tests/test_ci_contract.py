"""Under CI=true a missing PostgreSQL fails the run instead of skipping its half."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(ci: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CI": ci,
        "TEST_POSTGRES_URL": "postgresql+psycopg://nobody@127.0.0.1:9/nothing",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_tenancy.py",
            "-k",
            "postgresql",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_unreachable_postgres_fails_under_ci_and_skips_otherwise() -> None:
    in_ci = _run("true")
    assert in_ci.returncode != 0
    assert "under CI=true this is a failure" in in_ci.stdout
    locally = _run("")
    assert locally.returncode == 0, locally.stdout[-2000:]
    assert "skipped" in locally.stdout


def test_unreachable_redis_fails_under_ci_and_skips_otherwise() -> None:
    def run(ci: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CI": ci, "TEST_REDIS_URL": "redis://127.0.0.1:9/0"}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_ratelimit.py",
                "-k",
                "sqlite and redis",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    in_ci = run("true")
    assert in_ci.returncode != 0
    assert "under CI=true this is a failure" in in_ci.stdout
    locally = run("")
    assert locally.returncode == 0, locally.stdout[-2000:]
    assert "skipped" in locally.stdout
