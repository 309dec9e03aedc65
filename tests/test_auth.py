"""Client credentials, token verification and scopes."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jws, jwt

from app.auth import ALG, TYP
from tests.conftest import Credentials, make_client, token_for

pytestmark = pytest.mark.anyio


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict[str, Any], claims: dict[str, Any], key: bytes = b"x" * 32) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(signing_input.encode())
    return f"{signing_input}.{_b64(mac.finalize())}"


async def test_token_with_form_fields(client: httpx.AsyncClient, tenant_a: Credentials) -> None:
    r = await client.post(
        "/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant_a.client_id,
            "client_secret": tenant_a.client_secret,
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert set(body["scope"].split()) == set(tenant_a.scopes)
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"


async def test_token_with_http_basic_and_narrowed_scope(
    client: httpx.AsyncClient, tenant_a: Credentials
) -> None:
    r = await client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "scope": "knowledge:read"},
        auth=(tenant_a.client_id, tenant_a.client_secret),
    )
    assert r.status_code == 200
    assert r.json()["scope"] == "knowledge:read"
    token = r.json()["access_token"]
    ok = await client.get("/v1/knowledge", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    denied = await client.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert "insufficient_scope" in denied.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "password", "client_secret": "x"}, 400, "unsupported_grant_type"),
        ({"client_secret": "x"}, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "knowledge:admin"}, 400, "invalid_scope"),
    ],
)
async def test_token_errors(
    client: httpx.AsyncClient, database: Any, data: dict[str, str], status: int, error: str
) -> None:
    creds = make_client(database, "narrow", scopes=("knowledge:read",))
    data = {"client_id": creds.client_id, "client_secret": creds.client_secret, **data}
    r = await client.post("/v1/auth/token", data=data)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["error"] == error
    assert creds.client_secret not in r.text


async def test_unknown_client_is_rejected_like_a_wrong_secret(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "cl_doesnotexist",
            "client_secret": "x",
        },
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def _forged_corpus(signing_pem: str, issuer: str, audience: str, kid: str) -> dict[str, str]:
    now = int(time.time())
    good = {
        "iss": issuer,
        "aud": audience,
        "sub": "cl_attacker00",
        "tenant": str(uuid.uuid4()),
        "scope": "screenings:read knowledge:read tenants:admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": ALG, "typ": TYP, "kid": kid}
    private = serialization.load_pem_private_key(signing_pem.encode(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )

    def signed(
        claims: dict[str, Any], hdr: dict[str, Any] | None = None, key: str = signing_pem
    ) -> str:
        h = dict(header)
        h.update(hdr or {})
        alg = h.pop("alg")
        return jwt.encode(claims, key, algorithm=alg, headers=h)

    def without(name: str) -> dict[str, Any]:
        return {k: v for k, v in good.items() if k != name}

    valid = signed(good)
    h64, p64, s64 = valid.split(".")
    tampered_payload = _b64(json.dumps({**good, "tenant": str(uuid.uuid4())}).encode())
    return {
        "empty": "",
        "garbage": "not-a-token",
        "two_segments": f"{h64}.{p64}",
        "four_segments": f"{valid}.x",
        "five_part_jwe": "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        "alg_none": f"{_b64(json.dumps({'alg': 'none', 'typ': TYP, 'kid': kid}).encode())}.{p64}.",
        "alg_None": f"{_b64(json.dumps({'alg': 'None', 'typ': TYP, 'kid': kid}).encode())}.{p64}.",
        "hs256_guessed_key": _raw_token({"alg": "HS256", "typ": TYP, "kid": kid}, good),
        "hs256_public_pem": _raw_token({"alg": "HS256", "typ": TYP, "kid": kid}, good, public_pem),
        "hs256_public_der": _raw_token({"alg": "HS256", "typ": TYP, "kid": kid}, good, public_der),
        "hs256_empty_key": _raw_token({"alg": "HS256", "typ": TYP, "kid": kid}, good, b""),
        "expired": signed({**good, "iat": now - 2000, "nbf": now - 2000, "exp": now - 1100}),
        "wrong_aud": signed({**good, "aud": "someone-else"}),
        "aud_list": signed({**good, "aud": [audience, "other"]}),
        "no_aud": signed(without("aud")),
        "wrong_iss": signed({**good, "iss": "evil"}),
        "no_iss": signed(without("iss")),
        "no_exp": signed(without("exp")),
        "no_iat": signed(without("iat")),
        "no_sub": signed(without("sub")),
        "no_jti": signed(without("jti")),
        "exp_null": signed({**good, "exp": None}),
        "exp_string": signed({**good, "exp": str(now + 600)}),
        "exp_list": signed({**good, "exp": [1]}),
        "exp_huge_int": signed({**good, "exp": 10**30}),
        "exp_1e400": jws.sign(
            json.dumps(without("exp"))[:-1].encode() + b', "exp": 1e400}',
            signing_pem,
            headers={"typ": TYP, "kid": kid},
            algorithm=ALG,
        ),
        "exp_true": signed({**good, "exp": True}),
        "ttl_24h": signed({**good, "exp": now + 86400}),
        "nbf_future": signed({**good, "nbf": now + 3600}),
        "iat_future": signed({**good, "iat": now + 3600, "exp": now + 3900}),
        "unknown_kid": signed(good, {"kid": "someoneelse"}),
        "kid_traversal": signed(good, {"kid": "../../etc/passwd"}),
        "crit_header": signed(good, {"crit": ["x-unknown"]}),
        "typ_jwt": signed(good, {"typ": "JWT"}),
        "other_key_right_kid": signed(good, key=other),
        "unknown_scope": signed({**good, "scope": "root"}),
        "tenant_not_uuid": signed({**good, "tenant": "tenant-a"}),
        "tampered_payload": f"{h64}.{tampered_payload}.{s64}",
        "oversized": signed({**good, "pad": "A" * 100_000}),
        "jwk_header": signed(good, {"jwk": {"kty": "oct", "k": _b64(b"x" * 32)}}, key=other),
        "bad_base64": "###.$$$.%%%",
        "non_ascii": "ü.ü.ü",
    }


async def test_forged_and_malformed_tokens_get_401_never_500(
    client: httpx.AsyncClient, app: Any, signing_pem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = app.state.tokens
    corpus = _forged_corpus(signing_pem, tokens.issuer, tokens.audience, tokens.kid)
    statuses: dict[str, int] = {}
    for name, token in corpus.items():
        header = f"Bearer {token}".encode()  # bytes: some tokens are not ASCII
        r = await client.get("/v1/knowledge", headers={"Authorization": header})
        statuses[name] = r.status_code
        assert r.headers["content-type"] == "application/problem+json", name
        assert r.json()["detail"] in {
            "The access token is missing, invalid or expired.",
            "An access token is required.",
        }
    accepted = [n for n, s in statuses.items() if s < 400]
    server_errors = [n for n, s in statuses.items() if s >= 500]
    print(
        f"SECMETRIC T01 tokens={len(corpus)} accepted={len(accepted)} "
        f"status_set={sorted(set(statuses.values()))} 5xx={len(server_errors)}"
    )
    assert len(corpus) >= 30
    assert accepted == []
    assert server_errors == []
    assert set(statuses.values()) == {401}


async def test_valid_token_from_another_issuer_setup_is_rejected(
    client: httpx.AsyncClient, tenant_a: Credentials, app: Any
) -> None:
    token = await token_for(client, tenant_a)
    r = await client.get("/v1/knowledge", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    for header in ({"Authorization": token}, {"Authorization": f"Basic {token}"}, {}):
        r = await client.get("/v1/knowledge", headers=header)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_every_protected_route_requires_a_token(client: httpx.AsyncClient, app: Any) -> None:
    public = {"/healthz", "/readyz", "/metrics", "/v1/auth/token"}
    checked = 0
    for path, operations in app.openapi()["paths"].items():
        if path in public:
            continue
        url = re.sub(r"\{iso2\}", "CN", path)
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), url)
        for method in operations:
            for headers in ({}, {"Authorization": "Bearer x"}):
                r = await client.request(method.upper(), url, headers=headers)
                assert r.status_code == 401, (method, path, r.status_code)
                checked += 1
    print(f"SECMETRIC T03 route_checks={checked} non401=0")
    assert checked >= 10
