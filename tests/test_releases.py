"""Knowledge-base releases (upload, validation, activation, a second process following) and
re-screening (the diff, reproduction with an old release, background re-screens with the
``screening.changed`` webhook)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from fastapi import FastAPI

from app import batches, rescreen, webhooks
from app.db import Database
from app.kb.loader import Files, KnowledgeBase, canonical_sha256, read_files
from tests.conftest import Credentials, make_operator, token_for
from tests.servers import PROJECT_ROOT, start_server, stop
from tests.test_webhooks import (  # noqa: F401 (fixtures)
    Receiver,
    keys_of,
    make_webhook,
    options,
    private_client,
    receiver,
)

pytestmark = pytest.mark.anyio
R = "/v1/knowledge/releases"

# A journalist wanted by a state with a documented record: "high" on the built-in release.
SUBJECT = {
    "subject": {"occupation": "journalist", "nationalities": ["RU"]},
    "notice": {"type": "red_notice", "issuing_country": "RU", "charges": "fraud"},
}
ORDINARY = {
    "subject": {"occupation": "accountant", "nationalities": ["FR"]},
    "notice": {"type": "red_notice", "issuing_country": "FR", "charges": "armed robbery"},
}


def next_release(version: str = "1.99.0", *, thresholds: dict[str, int] | None = None) -> Files:
    """The built-in release with a new version and, optionally, other flag thresholds."""
    files = copy.deepcopy(read_files())
    files["release.yaml"]["version"] = version
    if thresholds is not None:
        files["scoring.yaml"]["thresholds"] = thresholds
    return files


@pytest.fixture
async def kadmin(client: httpx.AsyncClient, operator: Credentials) -> dict[str, str]:
    token = await token_for(client, operator, "knowledge:admin knowledge:read")
    return {"Authorization": f"Bearer {token}"}


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], files: Files
) -> httpx.Response:
    return await client.post(R, json={"files": files}, headers=headers)


async def test_upload_validates_stores_and_is_idempotent(
    client: httpx.AsyncClient, kadmin: dict[str, str], kb: KnowledgeBase
) -> None:
    files = next_release()
    r = await upload(client, kadmin, files)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{R}/1.99.0"
    body = r.json()
    assert body["version"] == "1.99.0"
    assert body["sha256"] == canonical_sha256(files)
    assert body["active"] is False

    assert (await upload(client, kadmin, files)).status_code == 200  # the same: a no-op
    changed = next_release(thresholds={"elevated": 20, "high": 40, "severe": 70})
    r = await upload(client, kadmin, changed)  # the same version, other content
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"

    # The stored bundle comes back as uploaded: the hash of what is downloaded matches.
    r = await client.get(f"{R}/1.99.0/bundle", headers=kadmin)
    assert r.status_code == 200
    assert canonical_sha256(r.json()["files"]) == body["sha256"]
    listed = (await client.get(R, headers=kadmin)).json()["items"]
    assert [i["version"] for i in listed] == ["1.99.0"]
    assert (await client.get(f"{R}/9.9.9", headers=kadmin)).status_code == 404


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        ("dangling source", "unknown source"),
        ("bad version", "release.yaml"),
        ("bad file name", "file names"),
        ("not a mapping", "files"),
    ],
)
async def test_invalid_releases_are_refused_with_the_reason(
    client: httpx.AsyncClient, kadmin: dict[str, str], breakage: str, named: str
) -> None:
    files: Any = next_release("1.98.0")
    if breakage == "dangling source":
        files["patterns.yaml"][0]["source_ids"] = ["no-such-source"]
    elif breakage == "bad version":
        files["release.yaml"]["version"] = "latest"
    elif breakage == "bad file name":
        files["../etc/passwd.yaml"] = []
    else:
        files = ["release.yaml"]
    r = await client.post(R, json={"files": files}, headers=kadmin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert named in json.dumps(r.json())
    assert (await client.get(R, headers=kadmin)).json()["items"] == []  # nothing stored


async def test_upload_and_activation_need_knowledge_admin(
    client: httpx.AsyncClient, tenant_a: Credentials, kadmin: dict[str, str]
) -> None:
    token = await token_for(client, tenant_a, "knowledge:read screenings:write tenants:admin")
    others = {"Authorization": f"Bearer {token}"}
    assert (await upload(client, others, next_release())).status_code == 403
    assert (await upload(client, kadmin, next_release())).status_code == 201
    assert (await client.post(f"{R}/1.99.0/activate", headers=others)).status_code == 403


async def _screen(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> Any:
    r = await client.post("/v1/screenings", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _activate(client: httpx.AsyncClient, headers: dict[str, str], version: str) -> Any:
    r = await client.post(f"{R}/{version}/activate", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_activation_switches_new_screenings_and_rescreen_diffs_and_reproduces(
    client: httpx.AsyncClient, auth_a: dict[str, str], kadmin: dict[str, str], kb: KnowledgeBase
) -> None:
    first = await _screen(client, auth_a, SUBJECT)
    assert first["knowledge_base"]["version"] == kb.version
    assert first["flag"] != "severe"
    # The next release flags at much lower scores: the same input becomes "severe".
    strict = {"elevated": 2, "high": 4, "severe": 6}
    assert (await upload(client, kadmin, next_release(thresholds=strict))).status_code == 201
    # The built-in release is stored too, so it can be reproduced after the switch.
    assert (await upload(client, kadmin, read_files())).status_code == 201
    info = await _activate(client, kadmin, "1.99.0")
    assert info["active"] is True

    # This process follows at once (the activation's after-response task).
    assert (await client.get("/v1/knowledge", headers=auth_a)).json()["version"] == "1.99.0"
    assert (await _screen(client, auth_a, SUBJECT))["flag"] == "severe"

    r = await client.post(f"/v1/screenings/{first['id']}/rescreen", headers=auth_a)
    assert r.status_code == 200, r.text
    body = r.json()
    diff = body["diff"]
    assert body["stored"] is True
    assert diff["before"] == {
        "flag": first["flag"],
        "score": first["score"],
        "knowledge_base_version": kb.version,
        "engine_version": first["engine_version"],
    }
    assert diff["after"]["flag"] == "severe"
    assert diff["after"]["knowledge_base_version"] == "1.99.0"
    assert diff["flag_changed"] is True
    assert diff["score_change"] == body["screening"]["score"] - first["score"]
    # The stored screening now holds the new result.
    now = (await client.get(f"/v1/screenings/{first['id']}", headers=auth_a)).json()
    assert now["flag"] == "severe"
    assert now["knowledge_base"]["version"] == "1.99.0"

    # Reproduction with the old release: exactly the first result, and nothing stored.
    r = await client.post(
        f"/v1/screenings/{first['id']}/rescreen",
        params={"knowledge_base_version": kb.version},
        headers=auth_a,
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] is False
    assert r.json()["screening"] == first
    again = (await client.get(f"/v1/screenings/{first['id']}", headers=auth_a)).json()
    assert again["knowledge_base"]["version"] == "1.99.0"
    r = await client.post(
        f"/v1/screenings/{first['id']}/rescreen",
        params={"knowledge_base_version": "7.7.7"},
        headers=auth_a,
    )
    assert r.status_code == 404

    # Rolling back: activating the older release makes it active again.
    await _activate(client, kadmin, kb.version)
    assert (await client.get("/v1/knowledge", headers=auth_a)).json()["version"] == kb.version


async def test_rescreen_is_tenant_scoped(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str]
) -> None:
    mine = await _screen(client, auth_a, SUBJECT)
    r = await client.post(f"/v1/screenings/{mine['id']}/rescreen", headers=auth_b)
    assert r.status_code == 404


def test_diff_lists_what_was_added_and_removed() -> None:
    def result(flag: str, score: int, codes: list[str], sources: list[str]) -> dict[str, Any]:
        return {
            "flag": flag,
            "score": score,
            "knowledge_base": {"version": "1.0.0"},
            "engine_version": "e",
            "indicators": [{"code": c} for c in codes],
            "counter_indicators": [],
            "challenge_grounds": [{"basis": "art3"}],
            "sources": {s: {} for s in sources},
        }

    d = rescreen.diff(
        result("high", 60, ["a", "b"], ["s1", "s2"]), result("elevated", 40, ["b", "c"], ["s2"])
    )
    assert (d.indicators_added, d.indicators_removed) == (["c"], ["a"])
    assert (d.sources_added, d.sources_removed) == ([], ["s1"])
    assert d.challenge_grounds_added == d.challenge_grounds_removed == []
    assert d.flag_changed
    assert d.score_change == -20


async def test_activation_rescreens_opted_in_tenants_and_sends_signed_diffs(
    private_client: httpx.AsyncClient,  # noqa: F811
    app: FastAPI,
    database: Database,
    tenant_a: Credentials,
    tenant_b: Credentials,
    receiver: Receiver,  # noqa: F811
) -> None:
    client = private_client
    a = {"Authorization": f"Bearer {await token_for(client, tenant_a)}"}
    b = {"Authorization": f"Bearer {await token_for(client, tenant_b)}"}
    operator = make_operator(database)
    admin = {"Authorization": f"Bearer {await token_for(client, operator, 'knowledge:admin')}"}
    r = await client.put("/v1/tenant", json={"rescreen_on_release": True}, headers=a)
    assert r.status_code == 200
    assert r.json()["rescreen_on_release"] is True
    _, secret = await make_webhook(
        client, a, receiver.url("/a"), ["screening.changed", "batch.completed"]
    )
    await make_webhook(client, b, receiver.url("/b"), ["screening.changed"])
    changing = await _screen(client, a, SUBJECT)
    steady = await _screen(client, a, ORDINARY)  # stays "low" under the next release
    not_opted = await _screen(client, b, SUBJECT)  # tenant b did not opt in

    strict = {"elevated": 2, "high": 4, "severe": 6}
    files = next_release(thresholds=strict)
    assert (await upload(client, admin, files)).status_code == 201
    await _activate(client, admin, "1.99.0")

    # The batch machinery re-screens in the background (here: the test drives the worker).
    releases, keys = app.state.releases, keys_of(app)
    while batches.work_once(database, releases, keys, "test-worker"):
        pass
    assert webhooks.deliver_due(database, keys, options(allow_private=True)) >= 2

    hits = receiver.received("/a")
    events = [standardwebhooks.Webhook(secret).verify(h.body, h.headers) for h in hits]
    changed = [e for e in events if e["type"] == "screening.changed"]
    completed = [e for e in events if e["type"] == "batch.completed"]
    assert len(changed) == 1, events  # only the screening whose flag changed
    data = changed[0]["data"]
    assert data["screening_id"] == changing["id"]
    assert data["diff"]["before"]["flag"] == changing["flag"]
    assert data["diff"]["after"] == {
        "flag": "severe",
        "score": data["diff"]["after"]["score"],
        "knowledge_base_version": "1.99.0",
        "engine_version": changing["engine_version"],
    }
    assert data["diff"]["flag_changed"] is True
    assert len(completed) == 1
    assert completed[0]["data"]["done"] == 2
    assert data["batch_id"] == completed[0]["data"]["batch_id"]
    assert receiver.received("/b") == []  # tenant b opted out: nothing re-screened

    for screening, headers, expected in (
        (changing, a, "1.99.0"),
        (steady, a, "1.99.0"),
        (not_opted, b, changing["knowledge_base"]["version"]),
    ):
        got = (await client.get(f"/v1/screenings/{screening['id']}", headers=headers)).json()
        assert got["knowledge_base"]["version"] == expected
    assert (await client.get(f"/v1/screenings/{steady['id']}", headers=a)).json()["flag"] == "low"
    batch = await client.get(f"/v1/batches/{data['batch_id']}", headers=a)
    assert batch.status_code == 200
    assert batch.json()["state"] == "completed"
    assert (await client.get(f"/v1/batches/{data['batch_id']}", headers=b)).status_code == 404
    print(
        f"SECMETRIC rescreen_webhooks changed={len(changed)} unchanged_skipped=1 "
        f"other_tenant_hits={len(receiver.received('/b'))}"
    )


# --- a second process follows the activation ---------------------------------------------


def test_a_second_process_follows_the_activation_within_seconds(
    tmp_path: Path, signing_pem: str
) -> None:
    """Two real servers on one database: a release activated through one is used by the
    other within its refresh interval, without a restart."""
    db_path = tmp_path / "app.db"
    env = {k: v for k, v in os.environ.items() if k not in {"APP_ENV", "SIGNING_KEY_FILE"}}
    env.update(
        DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{db_path}",
        SIGNING_KEY=signing_pem,
        KB_REFRESH_SECONDS="0.5",
        BATCH_WORKER="false",
        BATCH_WORKER_PROCESSES="0",
        PYTHONUNBUFFERED="1",
    )
    run = [sys.executable, "-m", "app"]

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*run, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("migrate")
    creds = json.loads(cli("create-client", "--tenant", "t1", "--admin", "--json").strip())
    ops = json.loads(cli("create-client", "--operator", "--json").strip())
    procs = []
    try:
        for n in range(2):
            procs.append(start_server(env, tmp_path / f"server-{n}.log"))
        urls = [f"http://127.0.0.1:{port}" for _, port in procs]
        first, second = urls

        def bearer(made: dict[str, str]) -> dict[str, str]:
            form = {
                "grant_type": "client_credentials",
                "client_id": made["client_id"],
                "client_secret": made["client_secret"],
            }
            token = httpx.post(first + "/v1/auth/token", data=form).json()["access_token"]
            return {"Authorization": f"Bearer {token}"}

        h, op = bearer(creds), bearer(ops)
        r = httpx.post(first + R, json={"files": next_release("1.99.0")}, headers=op, timeout=30)
        assert r.status_code == 201, r.text
        assert httpx.get(second + "/readyz").json()["knowledge_base"] != "1.99.0"
        r = httpx.post(f"{first}{R}/1.99.0/activate", headers=op, timeout=30)
        assert r.status_code == 200, r.text
        started = time.monotonic()
        while httpx.get(second + "/readyz").json()["knowledge_base"] != "1.99.0":
            assert time.monotonic() - started < 10, "the second process did not follow"
            time.sleep(0.05)
        seen_after = time.monotonic() - started
        r = httpx.post(second + "/v1/screenings", json=SUBJECT, headers=h, timeout=30)
        assert r.status_code == 201, r.text
        assert r.json()["knowledge_base"]["version"] == "1.99.0"
        print(f"SECMETRIC release_followed_by_second_process seconds={seen_after:.2f}")
    finally:
        for proc, _ in procs:
            stop(proc)


async def test_a_batch_worker_follows_the_activation(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    kb: KnowledgeBase,
    auth_a: dict[str, str],
    kadmin: dict[str, str],
) -> None:
    """A worker with its own view of the releases (as in another process) screens with the
    release activated after it started, once its refresh interval has passed."""
    import threading

    from app.releases import Releases

    worker_view = Releases(kb, database, refresh_seconds=0.2)
    worker_view.refresh()
    assert worker_view.active().version == kb.version
    assert (await upload(client, kadmin, next_release())).status_code == 201
    await _activate(client, kadmin, "1.99.0")
    r = await client.post("/v1/batches", json=[SUBJECT, ORDINARY], headers=auth_a)
    assert r.status_code == 202, r.text
    stop = threading.Event()
    worker = threading.Thread(
        target=batches.run_worker,
        args=(database, worker_view, keys_of(app), stop),
        kwargs={"idle_seconds": 0.05},
    )
    started = time.monotonic()
    worker.start()
    try:
        while (await client.get(r.headers["location"], headers=auth_a)).json()[
            "state"
        ] != "completed":
            assert time.monotonic() - started < 30
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join()
    assert worker_view.active().version == "1.99.0"
    results = (await client.get(f"{r.headers['location']}/results", headers=auth_a)).json()
    for item in results["items"]:
        screening = await client.get(f"/v1/screenings/{item['screening_id']}", headers=auth_a)
        assert screening.json()["knowledge_base"]["version"] == "1.99.0"


def test_the_built_in_release_is_stored_once_and_reproducible(
    database: Database, kb: KnowledgeBase
) -> None:
    from app import releases
    from app.models import KnowledgeRelease

    view = releases.Releases(kb, database)
    view.store_builtin()
    view.store_builtin()  # a second start, or a second process: nothing more
    with database.session(write=False) as session:
        rows = releases.list_all(session)
        assert [(r.version, r.sha256, r.uploaded_by) for r in rows] == [
            (kb.version, kb.sha256, releases.BUILT_IN)
        ]
        row = session.get(KnowledgeRelease, kb.version)
        assert row is not None
        assert canonical_sha256(releases.decode(row.bundle)) == kb.sha256
        assert releases.active_version(session) is None  # active by default, not activated
    assert view.refresh() is False
    assert view.active() is kb
