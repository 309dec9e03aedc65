"""Input limits, derived from the OpenAPI document so that a new field or list route is covered
(or, without a bound, reported) without editing this file.

- Every string and list of the screening input, over its bound, is a 422 problem+json that
  names the field and does not echo the value; at its bound it is accepted (the control).
- Every integer query parameter (the ``limit`` page sizes) above its maximum, at zero and
  negative is a 422; at its maximum and minimum it is accepted.
- Every string, list, integer and map in any request body or parameter documents its bound
  (maxLength, an enum, a format or a pattern of bounded length; maxItems; maximum;
  maxProperties).

The body-size limit (413) on the token endpoint, with and without Content-Length, is covered
by ``test_body_over_the_limit_is_413_with_or_without_content_length`` in test_http.py; here it
is checked on the screening route with a JSON body, before authentication and parsing.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # the stdlib's regex parser, to measure a pattern
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import CANARY

pytestmark = pytest.mark.anyio

Schema = dict[str, Any]
Path = tuple[str | int, ...]
BASE_BODY: dict[str, Any] = {"notice": {"type": "red_notice"}}
BOUNDED_FORMATS = frozenset({"date", "date-time", "time", "uuid", "email", "ipv4", "ipv6"})
PROBLEM_JSON = "application/problem+json"
UNBOUNDED_WIDTH = 65535  # re's parser reports at least this for +, * and {n,}


def resolve(schema: Schema, spec: dict[str, Any]) -> Schema:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = {
            **spec["components"]["schemas"][name],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema


def variants(schema: Schema, spec: dict[str, Any]) -> list[Schema]:
    """The non-null alternatives of a schema (``X | None`` is an anyOf with null)."""
    schema = resolve(schema, spec)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [resolve(o, spec) for o in options if o.get("type") != "null"]


def pattern_width(pattern: str) -> int | None:
    """The longest string an anchored pattern matches, or None when it is unbounded."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    try:
        width = sre_parse.parse(pattern).getwidth()[1]
    except re.error:  # a construct only the validator's engine knows: cannot tell
        return None
    return int(width) if width < UNBOUNDED_WIDTH else None


def string_bound(schema: Schema) -> int | None:
    """The longest accepted string, when the schema states one (maxLength or a pattern)."""
    if "maxLength" in schema:
        return int(schema["maxLength"])
    return pattern_width(schema["pattern"]) if "pattern" in schema else None


def missing_bound(schema: Schema) -> str | None:
    """What is missing for a value of this schema to be bounded, or None."""
    kind = schema.get("type")
    if "enum" in schema or "const" in schema or kind in {"boolean", "null"}:
        return None
    if kind is None:
        return "type"  # any value at all
    if kind == "string":
        if string_bound(schema) is None and schema.get("format") not in BOUNDED_FORMATS:
            return "maxLength"
    elif kind == "array":
        return None if "maxItems" in schema else "maxItems"
    elif kind in {"integer", "number"}:
        return None if "maximum" in schema or "exclusiveMaximum" in schema else "maximum"
    elif kind == "object":
        extra = schema.get("additionalProperties", False)
        if extra not in (False, None) and "maxProperties" not in schema:
            return "maxProperties"
    return None


def walk(schema: Schema, spec: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, Schema]]:
    """Every value position of a schema: properties, array items (at index 0), map values."""
    for option in variants(schema, spec):
        yield path, option
        for name, sub in option.get("properties", {}).items():
            yield from walk(sub, spec, (*path, name))
        if "items" in option:
            yield from walk(option["items"], spec, (*path, 0))
        if isinstance(option.get("additionalProperties"), dict):
            yield from walk(option["additionalProperties"], spec, (*path, "*"))


def undocumented_limits(spec: dict[str, Any]) -> list[str]:
    """Every parameter or request-body value of every operation that states no bound."""
    found = []
    for route, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {route}"
            for param in op.get("parameters", []):
                for path, schema in walk(param["schema"], spec, (param["in"], param["name"])):
                    if (lack := missing_bound(schema)) is not None:
                        found.append(f"{where} {'.'.join(map(str, path))}: no {lack}")
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                for path, schema in walk(content["schema"], spec, (media,)):
                    if (lack := missing_bound(schema)) is not None:
                        found.append(f"{where} {'.'.join(map(str, path))}: no {lack}")
    return found


def valid_value(schema: Schema, spec: dict[str, Any]) -> Any:
    """A small value the schema accepts (the at-limit controls prove it is accepted)."""
    schema = variants(schema, spec)[0]
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: valid_value(sub, spec)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if kind == "array":
        return [valid_value(schema["items"], spec)] * int(schema.get("minItems", 0))
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    return "a" * max(1, int(schema.get("minLength", 1)))


def place(schema: Schema, path: Path, value: Any, spec: dict[str, Any]) -> Any:
    """A value of ``schema`` with ``value`` at ``path`` (a list holds it as its only item) and
    every required field on the way filled in."""
    if not path:
        return value
    node = variants(schema, spec)[0]
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        return [place(node["items"], rest, value, spec)]
    around = valid_value(node, spec)
    around[key] = place(node["properties"][key], rest, value, spec)
    return around


def oversized(length: int) -> str:
    """A value of ``length`` characters made of the canary, so an echo of it can be found."""
    return (CANARY * (length // len(CANARY) + 1))[:length]


def screening_cases(spec: dict[str, Any]) -> list[tuple[Path, Any, Any, Any]]:
    """(field path, value over the bound, body with it, body with the value at the bound or
    None) for each bounded string and list of the screening input."""
    content = spec["paths"]["/v1/screenings"]["post"]["requestBody"]["content"]
    root = content["application/json"]["schema"]

    def body(path: Path, value: Any) -> dict[str, Any]:
        return {**BASE_BODY, **place(root, path, value, spec)}

    cases: list[tuple[Path, Any, Any, Any]] = []
    for path, node in walk(root, spec):
        if not path:
            continue
        if node.get("type") == "string" and "enum" not in node:
            bound = string_bound(node)
            if bound is None:
                continue  # a format, or unbounded: the documentation check reports the latter
            at_limit = None
            if "pattern" not in node:
                at_limit = "a" * bound
            elif len(example := str((node.get("examples") or [""])[0])) == bound:
                at_limit = example
            value = oversized(bound + 1)
            cases.append((path, value, body(path, value), at_limit and body(path, at_limit)))
        elif node.get("type") == "array" and "maxItems" in node:
            item = valid_value(node["items"], spec)
            n = int(node["maxItems"])
            over = [item] * (n + 1)
            cases.append((path, over, body(path, over), body(path, [item] * n)))
    return cases


def error_locs(r: httpx.Response) -> list[list[str]]:
    return [e["loc"] for e in r.json().get("errors") or []]


async def test_input_limits_are_enforced_and_documented(
    app: FastAPI, client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    spec = app.openapi()

    # 1. Every bounded string and list of the screening input, one past its bound.
    cases = screening_cases(spec)
    wrong: list[tuple[str, int, str]] = []
    status_422 = controls = 0
    for path, value, over_body, at_limit_body in cases:
        name = ".".join(map(str, path))
        r = await client.post("/v1/screenings?store=false", json=over_body, headers=auth_a)
        expected_loc = ["body", *map(str, path)]
        ok = (
            r.status_code == 422
            and r.headers["content-type"] == PROBLEM_JSON
            and any(loc[: len(expected_loc)] == expected_loc for loc in error_locs(r))
        )
        status_422 += ok
        if not ok:
            wrong.append((name, r.status_code, "not a 422 naming the field"))
        if CANARY in r.text or (isinstance(value, str) and value in r.text):
            wrong.append((name, r.status_code, "echoes the value"))
        if at_limit_body is not None:
            control = await client.post(
                "/v1/screenings?store=false", json=at_limit_body, headers=auth_a
            )
            controls += 1
            if control.status_code != 200:
                wrong.append((name, control.status_code, "refused at its bound"))

    # 2. Every integer query parameter (page sizes) beyond its range.
    pages: list[tuple[str, str, Schema, str]] = []
    for route, operations in spec["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                schema = variants(param["schema"], spec)[0]
                if param["in"] == "query" and schema.get("type") == "integer":
                    pages.append((method.upper(), route, schema, param["name"]))
    oversized_pages = status_422_pages = 0
    # Routes under an object need a real one of the caller's for the in-range calls to succeed.
    batch = await client.post("/v1/batches", json=[BASE_BODY], headers=auth_a)
    webhook = await client.post(
        "/v1/webhooks",
        json={"url": "https://ngo.example/hooks", "events": ["batch.completed"]},
        headers=auth_a,
    )
    real_ids = {"batch_id": batch.json()["id"], "webhook_id": webhook.json()["id"]}
    for method, route, schema, name in pages:
        url = re.sub(r"\{([^}]+)\}", lambda m: real_ids.get(m.group(1), str(uuid.uuid4())), route)
        low, high = int(schema.get("minimum", 1)), int(schema["maximum"])
        for bad in sorted({high + 1, 10 * high, low - 1, 0, -1} - set(range(low, high + 1))):
            r = await client.request(method, url, params={name: bad}, headers=auth_a)
            oversized_pages += 1
            if r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON:
                status_422_pages += 1
            else:
                wrong.append((f"{method} {route}?{name}={bad}", r.status_code, "not a 422"))
        for good in (low, high):
            r = await client.request(method, url, params={name: good}, headers=auth_a)
            if r.status_code != 200:
                wrong.append((f"{method} {route}?{name}={good}", r.status_code, "refused"))

    # 3. Every bound is documented.
    undocumented = undocumented_limits(spec)

    print(
        f"SECMETRIC limits oversized_fields={len(cases)} status_422={status_422} "
        f"oversized_pages={oversized_pages} status_422_pages={status_422_pages} "
        f"undocumented_limits={len(undocumented)}"
    )
    assert wrong == []
    assert undocumented == []
    assert status_422 == len(cases)
    assert status_422_pages == oversized_pages
    # The screening input has bounded strings and lists, and list routes have page sizes.
    assert {type(v) for _, v, _, _ in cases} == {str, list}
    assert {name for _, _, _, name in pages} >= {"limit"}
    assert controls >= len(cases) // 2
    # Controls: the documentation check sees an unbounded value of each kind.
    unbounded: list[Schema] = [
        {"type": "string"},
        {"type": "string", "pattern": "^[a-z]+$"},
        {"type": "array", "items": {"type": "string", "maxLength": 1}},
        {"type": "integer", "minimum": 1},
        {"type": "object", "additionalProperties": {"type": "integer", "maximum": 1}},
        {},
    ]
    assert [missing_bound(s) for s in unbounded] == [
        "maxLength",
        "maxLength",
        "maxItems",
        "maximum",
        "maxProperties",
        "type",
    ]


async def test_oversized_screening_body_is_413_before_authentication_and_parsing(
    client: httpx.AsyncClient, auth_a: dict[str, str], settings: Any
) -> None:
    body = (
        b'{"notice": {"type": "red_notice"}, "context": "'
        + oversized(settings.max_body_bytes).encode()
        + b'"}'
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    json_type = {"content-type": "application/json"}
    responses = [
        await client.post("/v1/screenings", content=body, headers={**auth_a, **json_type}),
        await client.post("/v1/screenings", content=chunks(), headers={**auth_a, **json_type}),
        await client.post("/v1/screenings", content=body, headers=json_type),
    ]
    assert "content-length" not in responses[1].request.headers
    status_413 = sum(
        r.status_code == 413 and r.headers["content-type"] == PROBLEM_JSON for r in responses
    )
    echoed = sum(CANARY in r.text for r in responses)
    stored = len((await client.get("/v1/screenings", headers=auth_a)).json()["items"])
    print(
        f"SECMETRIC limits_body route=/v1/screenings requests={len(responses)} "
        f"status_413={status_413} echoed={echoed} stored={stored}"
    )
    assert status_413 == len(responses)
    assert echoed == 0
    assert stored == 0
