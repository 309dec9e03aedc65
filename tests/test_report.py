"""The HTML report of a stored screening: content, citations, provenance, escaping, isolation.

Reports are read through the API and parsed with the standard library's HTML parser, so the
assertions are about the document a browser would build, not about substrings of the markup.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from app import report
from app.api.examples import SCREENING_EXAMPLES
from app.db import Database
from app.keys import KeyRing
from app.models import Screening
from tests.conftest import CANARY, Credentials, token_for

pytestmark = pytest.mark.anyio

HIGH_RISK: dict[str, Any] = SCREENING_EXAMPLES["uyghur_activist"]["value"]
SECTIONS = [
    "Flag, return risk and confidence",
    "Submitted information",
    "Points by indicator",
    "Indicators",
    "Counter-indicators",
    "Return-risk indicators",
    "Grounds to challenge the notice",
    "Similar documented cases",
    "Missing information",
    "Sources",
    "Provenance",
    "Disclaimer",
]
# Attributes that make a browser fetch or navigate to a URL.
URL_ATTRIBUTES = {"src", "href", "xlink:href", "action", "formaction", "data", "poster", "srcset"}
FETCHING_TAGS = {"script", "link", "img", "iframe", "object", "embed", "base", "form", "video"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class Doc(HTMLParser):
    """Every element with its attributes and its text content; the text of the whole page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in {"meta", "br", "hr", "rect", "line", "input", "img", "link"}:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for element in self._open:
            element.text += data
        if self._open and self._open[-1].tag == "style":
            self.styles.append(data)

    def all(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]

    def by_id(self, element_id: str) -> Element:
        return next(e for e in self.elements if e.attrs.get("id") == element_id)

    def page_text(self) -> str:
        return " ".join("".join(self.text).split())


def parse(html: str) -> Doc:
    doc = Doc()
    doc.feed(html)
    doc.close()
    return doc


def squash(text: str) -> str:
    return " ".join(text.split())


def independent_sha256(screening: dict[str, Any]) -> str:
    """The definition printed in the report, computed here without app code."""
    result = {k: v for k, v in screening.items() if k not in {"id", "created_at"}}
    canonical = json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def first_citation_order(screening: dict[str, Any]) -> list[str]:
    order: list[str] = []
    lists = {**screening, "return_risk_indicators": screening["return_risk"]["indicators"]}
    for kind in (
        "indicators",
        "counter_indicators",
        "return_risk_indicators",
        "challenge_grounds",
        "similar_cases",
    ):
        for item in lists[kind]:
            for source_id in item["source_ids"]:
                if source_id in screening["sources"] and source_id not in order:
                    order.append(source_id)
    return order + sorted(s for s in screening["sources"] if s not in order)


async def screen(client: httpx.AsyncClient, auth: dict[str, str], body: Any) -> dict[str, Any]:
    r = await client.post("/v1/screenings", json=body, headers=auth)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_report_shows_the_whole_screening_with_numbered_sources(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    screening = await screen(client, auth_a, HIGH_RISK)
    assert screening["flag"] == "severe"
    r = await client.get(f"/v1/screenings/{screening['id']}/report", headers=auth_a)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers.get_list("content-security-policy") == [
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
    ]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["content-disposition"] == (
        f'inline; filename="screening-{screening["id"]}-report.html"'
    )
    doc = parse(r.text)
    text = doc.page_text()

    # Headings: one h1 first, then the sections as h2s in order (h3s only inside them).
    headings = [e for e in doc.elements if e.tag in {"h1", "h2", "h3", "h4", "h5", "h6"}]
    assert headings[0].tag == "h1"
    assert [h.tag for h in headings].count("h1") == 1
    assert {h.tag for h in headings[1:]} <= {"h2", "h3"}
    assert headings[1].tag == "h2"
    assert [squash(h.text) for h in headings if h.tag == "h2"] == SECTIONS

    # What was submitted, and nothing about it left out.
    submitted = squash(doc.by_id("submitted").text)
    for value in ("Uyghur", "World Uyghur Congress", "组织、领导、参加恐怖组织罪", "2017"):
        assert value in submitted
    assert squash(HIGH_RISK["context"]) in submitted

    # Flag and score, with the thresholds, in words (not only in colour).
    flag = squash(doc.by_id("flag").text)
    assert "Flag: SEVERE" in flag
    assert f"score {screening['score']} of 100" in flag
    # The second assessment and the confidence stand beside the flag, before anything else.
    risk = screening["return_risk"]
    assert f"Return risk: {risk['level'].upper()}" in flag
    assert f"score {risk['score']} of 100" in flag
    assert f"Confidence: {screening['confidence']['level']}" in flag
    assert doc.elements.index(doc.by_id("flag")) < doc.elements.index(doc.by_id("submitted"))
    for name, value in screening["thresholds"].items():
        assert f"{name.capitalize()}" in flag
        assert str(value) in flag

    # The chart: one bar per indicator and counter-indicator, each named with its points.
    svgs = doc.all("svg")
    assert len(svgs) == 1
    assert svgs[0].attrs["role"] == "img"
    assert svgs[0].attrs["aria-labelledby"]
    fired = screening["indicators"] + screening["counter_indicators"]
    bars = [e for e in doc.all("rect") if "bar" in e.attrs.get("class", "").split()]
    assert len(bars) == len(fired) > 0
    rows = [e for e in doc.all("g") if "bar-row" in e.attrs.get("class", "")]
    assert [row.attrs["aria-label"] for row in rows] == [
        f"{i['label']}: {i['points']:+d} points ("
        f"{'indicator' if i in screening['indicators'] else 'counter-indicator'})"
        for i in fired
    ]
    assert all(float(b.attrs["width"]) > 0 for b in bars)

    # Every indicator with its points, explanation, evidence and patterns.
    indicators = squash(doc.by_id("indicators").text)
    for i in screening["indicators"]:
        assert i["label"] in indicators
        assert f"{i['points']:+d} points" in indicators
        assert squash(i["explanation"]) in indicators
        for ev in i["evidence"]:
            assert ev["field"] in indicators
            assert ev["matched_text"] in indicators
        for pattern in i["patterns"]:
            assert pattern in indicators
    grounds = squash(doc.by_id("grounds").text)
    for g in screening["challenge_grounds"]:
        assert squash(g["title"]) in grounds
        # each ground's status and what the lawyer must establish are printed with it
        assert squash(report._GROUND_STATUS[g["status"]]) in grounds
        for item in g["establish"]:
            assert squash(item) in grounds
    cases = squash(doc.by_id("cases").text)
    for c in screening["similar_cases"]:
        assert c["name"] in cases
        assert c["label"] in cases
        assert all(s in cases for s in c["shared"])
    missing = squash(doc.by_id("missing").text)
    for m in screening["missing_information"]:
        assert m["field"] in missing

    # Sources: every one, numbered in order of first citation, each with its URL as a link.
    order = first_citation_order(screening)
    items = [e for e in doc.all("li") if e.attrs.get("id", "").startswith("src-")]
    assert [e.attrs["id"] for e in items] == [f"src-{n}" for n in range(1, len(order) + 1)]
    links = {a.attrs["href"] for a in doc.all("a")}
    for n, source_id in enumerate(order, start=1):
        source = screening["sources"][source_id]
        item = squash(items[n - 1].text)
        assert squash(source["title"]) in item
        assert squash(source["publisher"]) in item
        assert source["url"] in item
        assert source["url"] in links
    # Footnote markers point at those numbers, and every number is cited or listed.
    marks = [a.attrs["href"] for a in doc.all("a") if a.attrs["href"].startswith("#")]
    assert marks
    assert {m.removeprefix("#") for m in marks} <= {e.attrs["id"] for e in items}
    first = screening["indicators"][0]
    first_numbers = sorted(order.index(s) + 1 for s in set(first["source_ids"]))
    heading = next(h for h in headings if squash(h.text).startswith(first["label"]))
    assert squash(heading.text).endswith(f"[{', '.join(map(str, first_numbers))}]")

    # Provenance: versions and the hash a reader can recompute.
    provenance = squash(doc.by_id("provenance").text)
    for value in (
        screening["id"],
        screening["created_at"],
        screening["engine_version"],
        screening["knowledge_base"]["version"],
        screening["knowledge_base"]["sha256"],
    ):
        assert value in provenance
    digest = independent_sha256(screening)
    assert doc.by_id("result-sha256").text == digest == report.canonical_sha256(screening)
    assert "sorted keys" in provenance

    # The disclaimer, near the top and in its own section.
    assert text.count(screening["disclaimer"]) == 2
    assert squash(doc.by_id("disclaimer").text).endswith(screening["disclaimer"])


async def test_report_loads_nothing_from_anywhere(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    screening = await screen(client, auth_a, HIGH_RISK)
    html = (await client.get(f"/v1/screenings/{screening['id']}/report", headers=auth_a)).text
    doc = parse(html)
    source_urls = {s["url"] for s in screening["sources"].values()}
    external = []
    for element in doc.elements:
        for name, value in element.attrs.items():
            # Only a citation link may leave the document, and only to a cited source.
            citation = element.tag == "a" and name == "href" and value in source_urls
            if name in URL_ATTRIBUTES and not value.startswith("#") and not citation:
                external.append((element.tag, name, value))
            assert not name.startswith("on"), (element.tag, name)
    assert external == []
    assert not FETCHING_TAGS & {e.tag for e in doc.elements}
    css = "".join(doc.styles)
    assert "@media print" in css
    assert "url(" not in css
    assert "@import" not in css
    assert "@font-face" not in css
    meta = [e for e in doc.all("meta") if e.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert meta[0].attrs["content"] == report.CSP
    assert len(doc.all("style")) == 1


async def test_hostile_input_is_rendered_as_text(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    script = "<script>alert(1)</script>"
    hostile = {
        "subject": {
            "full_name": f'{CANARY} {script}<img src=x onerror="alert(2)">',
            "aliases": ['"><svg onload=alert(3)>', "</dd></dl><h1>forged</h1>"],
            "occupation": "journalist & <b>writer</b>",
            "nationalities": ["RU"],
        },
        "notice": {
            "type": "red_notice",
            "issuing_country": "RU",
            "charges": "fraud </p><a href='https://evil.example/'>click</a>",
            "warrant_authority": "<style>body{display:none}</style>",
        },
        "context": "</section><script src=https://evil.example/x.js></script>",
    }
    screening = await screen(client, auth_a, hostile)
    r = await client.get(f"/v1/screenings/{screening['id']}/report", headers=auth_a)
    assert r.status_code == 200
    html = r.text
    doc = parse(html)
    # No element came from the input: one h1, one style, one svg (the chart), no script.
    assert len(doc.all("h1")) == 1
    assert len(doc.all("style")) == 1
    assert len(doc.all("svg")) <= 1
    assert not doc.all("script")
    assert not doc.all("img")
    assert not doc.all("b")
    assert "evil.example" not in " ".join(v for e in doc.elements for v in e.attrs.values())
    assert all(not k.startswith("on") for e in doc.elements for k in e.attrs)
    assert "<script" not in html.lower()
    # ... and every value is there, as text, exactly as submitted.
    text = doc.page_text()
    for value in (
        hostile["subject"]["full_name"],
        *hostile["subject"]["aliases"],
        hostile["subject"]["occupation"],
        hostile["notice"]["charges"],
        hostile["notice"]["warrant_authority"],
        hostile["context"],
    ):
        assert squash(value) in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_report_needs_the_read_scope_and_the_owning_tenant(
    client: httpx.AsyncClient,
    auth_a: dict[str, str],
    auth_b: dict[str, str],
    tenant_a: Credentials,
) -> None:
    screening = await screen(client, auth_a, {**HIGH_RISK, "subject": {"full_name": CANARY}})
    url = f"/v1/screenings/{screening['id']}/report"
    theirs = await client.get(url, headers=auth_b)
    missing = await client.get(f"/v1/screenings/{uuid.uuid4()}/report", headers=auth_b)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    assert theirs.json()["title"] == missing.json()["title"]
    assert CANARY not in theirs.text
    writer = await token_for(client, tenant_a, scope="screenings:write")
    refused = await client.get(url, headers={"Authorization": f"Bearer {writer}"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert CANARY not in refused.text
    assert (await client.get(url)).status_code == 401
    reader = await token_for(client, tenant_a, scope="screenings:read")
    allowed = await client.get(url, headers={"Authorization": f"Bearer {reader}"})
    assert allowed.status_code == 200
    assert CANARY in allowed.text


async def test_erased_and_unreadable_screenings_have_no_report(
    client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    erased = await screen(client, auth_a, HIGH_RISK)
    assert (
        await client.delete(f"/v1/screenings/{erased['id']}", headers=auth_a)
    ).status_code == 204
    r = await client.get(f"/v1/screenings/{erased['id']}/report", headers=auth_a)
    assert r.status_code == 404
    # A screening whose key is gone cannot be read: the report says 410 like the JSON does.
    shredded = await screen(client, auth_a, {**HIGH_RISK, "subject": {"full_name": CANARY}})
    with database.session() as session:
        row = session.get(Screening, uuid.UUID(shredded["id"]))
        assert row is not None
        assert KeyRing.shred(session, row.tenant_id, [row.id]) == 1
    r = await client.get(f"/v1/screenings/{shredded['id']}/report", headers=auth_a)
    assert r.status_code == 410
    assert r.headers["content-type"] == "application/problem+json"
    assert CANARY not in r.text


async def test_counter_indicators_are_negative_bars_left_of_the_axis(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    screening = await screen(client, auth_a, SCREENING_EXAMPLES["ordinary_fraud"]["value"])
    assert screening["flag"] == "low"
    assert screening["counter_indicators"]
    html = (await client.get(f"/v1/screenings/{screening['id']}/report", headers=auth_a)).text
    doc = parse(html)
    assert "Flag: LOW" in squash(doc.by_id("flag").text)
    bars = [e for e in doc.all("rect") if "bar" in e.attrs.get("class", "").split()]
    counters = [b for b in bars if "counter-indicator" in b.attrs["class"].split()]
    assert len(bars) == len(screening["indicators"]) + len(screening["counter_indicators"])
    assert len(counters) == len(screening["counter_indicators"])
    axis = max(float(b.attrs["x"]) + float(b.attrs["width"]) for b in counters)
    for b in bars:
        if b in counters:
            assert float(b.attrs["x"]) < axis
        else:
            assert float(b.attrs["x"]) >= axis - 0.1
    # Longer bars for more points: widths follow the points.
    points = [abs(i["points"]) for i in screening["counter_indicators"]]
    widths = [float(b.attrs["width"]) for b in counters]
    assert sorted(range(len(points)), key=points.__getitem__) == sorted(
        range(len(widths)), key=widths.__getitem__
    )


def test_a_screening_where_nothing_fired_has_no_chart() -> None:
    screening: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "created_at": "2025-01-01T00:00:00Z",
        "score": 0,
        "flag": "low",
        "thresholds": {"elevated": 25, "high": 50, "severe": 75},
        "indicators": [],
        "counter_indicators": [],
        "challenge_grounds": [],
        "missing_information": [],
        "similar_cases": [],
        "sources": {},
        "score_formula": {"expression": "", "groups": {}, "raw_total": 0, "score": 0},
        "engine_version": "1",
        "knowledge_base": {"version": "1", "sha256": "0" * 64},
        "disclaimer": "Not legal advice.",
    }
    doc = parse(report.render(screening, {"notice": {"type": "red_notice"}}))
    assert not doc.all("svg")
    text = doc.page_text()
    assert "No indicator or counter-indicator fired." in text
    assert "No source cited." in text
    assert doc.by_id("result-sha256").text == independent_sha256(screening)
