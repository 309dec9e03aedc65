"""The lawyer-ready HTML report of a stored screening: one self-contained document.

``render(screening, request)`` takes the API representation of a screening (``id``,
``created_at`` and the ``ScreeningResult`` fields) and the stored request, and returns an HTML5
document with no external resource at all: inline CSS, an inline SVG chart, no script, no font,
no image. Every submitted value is escaped (all input is hostile). Sources are numbered in order
of first citation. ``canonical_sha256`` lets a reader verify that a report shows a given result.

Pure: standard library only, no web framework, no database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from app.engine.result import DISCLAIMER

CANONICAL_DEFINITION = (
    "The result SHA-256 is the SHA-256 of the screening without its id and created_at, "
    'written as JSON with sorted keys, the separators "," and ":" and no other whitespace, '
    "and non-ASCII characters as UTF-8 rather than escapes."
)

# The policy of the document itself; the API response carries the same one as a header.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_IDENTITY = ("id", "created_at")

_FIELD_LABELS = {
    "full_name": "Full name",
    "date_of_birth": "Date of birth",
    "left_requesting_country_year": "Year left the requesting state",
    "issuing_country": "Issuing country",
    "interpol_reference": "INTERPOL reference",
    "conviction_in_absentia": "Conviction in absentia",
    "public": "Published by INTERPOL",
    "granted_by": "Granted by",
    "persecution_country": "State fled",
    "entity_id": "Entity id",
    "charge_translation": "Charge (translation)",
    "issuing_country_id": "Issuing country",
}

_FLAG_WORDS = {
    "low": "Low",
    "elevated": "Elevated",
    "high": "High",
    "severe": "Severe",
}


def canonical_json(screening: Mapping[str, Any]) -> bytes:
    """The result as hashed: every field but ``id`` and ``created_at``, canonically written."""
    result = {k: v for k, v in screening.items() if k not in _IDENTITY}
    return json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_sha256(screening: Mapping[str, Any]) -> str:
    """The hex SHA-256 of ``canonical_json(screening)``, as printed in the report."""
    return hashlib.sha256(canonical_json(screening)).hexdigest()


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _label(key: str) -> str:
    return _FIELD_LABELS.get(key) or key.replace("_", " ").capitalize()


class _Citations:
    """Numbers sources in order of first citation and writes the footnote markers."""

    def __init__(self, sources: Mapping[str, Any]) -> None:
        self.sources = sources
        self.order: list[str] = []

    def number(self, source_id: str) -> int:
        if source_id not in self.order:
            self.order.append(source_id)
        return self.order.index(source_id) + 1

    def marks(self, source_ids: Iterable[str]) -> str:
        # Unlisted ids have nothing to point at (the result lists every source it cites).
        numbers = sorted({self.number(s) for s in source_ids if s in self.sources})
        links = [f'<a href="#src-{n}" aria-label="source {n}">{n}</a>' for n in numbers]
        if not links:
            return ""
        return f'<sup class="refs">[{", ".join(links)}]</sup>'

    def all_ids(self) -> list[str]:
        """Cited sources in citation order, then any listed but not cited, by id."""
        return self.order + sorted(s for s in self.sources if s not in self.order)


# --- submitted information ------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return _fields(value)
    if isinstance(value, list):
        if all(isinstance(v, Mapping) for v in value):
            items = "".join(f"<li>{_fields(v)}</li>" for v in value)
            return f'<ol class="plain">{items}</ol>'
        return ", ".join(_e(v) for v in value)
    return _e(value)


def _fields(data: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<dt>{_e(_label(str(k)))}</dt><dd dir="auto">{_value(v)}</dd>'
        for k, v in data.items()
        if v not in (None, [], {})
    )
    return f'<dl class="fields">{rows}</dl>' if rows else "<p>Nothing given.</p>"


def _submitted(request: Mapping[str, Any]) -> str:
    parts = ['<section id="submitted"><h2>Submitted information</h2>']
    parts.append(
        "<p>Only what was submitted for this screening, as submitted; empty fields are "
        "left out.</p>"
    )
    for key, title in (
        ("subject", "Subject"),
        ("notice", "Notice"),
        ("interpol_notice", "INTERPOL notice (as submitted)"),
    ):
        data = request.get(key)
        if isinstance(data, Mapping) and data:
            parts.append(f"<h3>{title}</h3>{_fields(data)}")
    context = request.get("context")
    if context:
        parts.append(f'<h3>Context</h3><p class="context" dir="auto">{_e(context)}</p>')
    known = {"subject", "notice", "interpol_notice", "context"}
    others = {k: v for k, v in request.items() if k not in known}
    if others:
        parts.append(f"<h3>Other</h3>{_fields(others)}")
    parts.append("</section>")
    return "".join(parts)


# --- flag and score -------------------------------------------------------------------------


def _flag(screening: Mapping[str, Any]) -> str:
    flag = str(screening.get("flag", ""))
    word = _FLAG_WORDS.get(flag, flag.capitalize())
    score = screening.get("score")
    t = screening.get("thresholds") or {}
    bands = [
        ("low", f"below {t.get('elevated')}"),
        ("elevated", f"{t.get('elevated')} to {_minus_one(t.get('high'))}"),
        ("high", f"{t.get('high')} to {_minus_one(t.get('severe'))}"),
        ("severe", f"{t.get('severe')} and above"),
    ]
    rows = "".join(
        f'<tr class="current"><th scope="row">{_FLAG_WORDS[name]} (this screening)</th>'
        f"<td>{_e(band)}</td></tr>"
        if name == flag
        else f'<tr><th scope="row">{_FLAG_WORDS[name]}</th><td>{_e(band)}</td></tr>'
        for name, band in bands
    )
    formula = screening.get("score_formula") or {}
    groups = formula.get("groups") or {}
    group_rows = "".join(
        f"<tr><th scope='row'>{_e(name)}</th>"
        f"<td>{_e(', '.join(f'{p:+d}' for p in g.get('points', [])))}</td>"
        f"<td>{_e(g.get('cap'))}</td><td>{_e(g.get('subtotal'))}</td></tr>"
        for name, g in sorted(groups.items())
    )
    formula_html = ""
    if groups:
        formula_html = (
            "<h3>How the score is computed</h3>"
            f"<p>{_e(formula.get('expression', ''))}</p>"
            '<table class="grid"><thead><tr><th scope="col">Group</th>'
            '<th scope="col">Points</th><th scope="col">Cap</th>'
            '<th scope="col">Subtotal</th></tr></thead>'
            f"<tbody>{group_rows}</tbody></table>"
            f"<p>Total before clamping: {_e(formula.get('raw_total'))}; "
            f"score: {_e(formula.get('score'))} (0 to 100).</p>"
        )
    return (
        '<section id="flag"><h2>Flag, return risk and confidence</h2>'
        f'<p class="flag flag-{_e(flag)}" role="status">'
        f'Flag: <strong class="badge">{_e(word.upper())}</strong> '
        f'<span class="score">score {_e(score)} of 100</span></p>'
        + _return_and_confidence(screening)
        + '<table class="grid thresholds"><caption>Published thresholds</caption>'
        '<thead><tr><th scope="col">Flag</th><th scope="col">Score</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>{formula_html}</section>"
    )


def _return_and_confidence(screening: Mapping[str, Any]) -> str:
    """The second assessment and how much the result rests on, beside the flag."""
    risk = screening.get("return_risk") or {}
    level = str(risk.get("level", ""))
    confidence = screening.get("confidence") or {}
    reasons = "".join(f"<li>{_e(r.get('text'))}</li>" for r in confidence.get("reasons") or [])
    return (
        f'<p class="return-risk flag-{_e(level)}">Return risk: '
        f'<strong class="badge">{_e(_FLAG_WORDS.get(level, level).upper())}</strong> '
        f'<span class="score">score {_e(risk.get("score"))} of 100</span> '
        "(what the person risks if returned, assessed apart from the flag)</p>"
        f"<p>Confidence: <strong>{_e(confidence.get('level'))}</strong></p>"
        + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
    )


def _minus_one(value: Any) -> str:
    return str(value - 1) if isinstance(value, int) else "?"


# --- the chart ------------------------------------------------------------------------------

_CHART_WIDTH = 760
_ROW = 46
_PAD = 8
_VALUE_ROOM = 44
_LABEL_CHARS = 110
_POSITIVE = "#9b3b2e"
_NEGATIVE = "#2f6f5e"


def _chart(screening: Mapping[str, Any]) -> str:
    rows: list[tuple[str, int, str]] = [
        (str(i.get("label", "")), int(i.get("points", 0)), "indicator")
        for i in screening.get("indicators") or []
    ] + [
        (str(i.get("label", "")), int(i.get("points", 0)), "counter-indicator")
        for i in screening.get("counter_indicators") or []
    ]
    head = '<section id="chart"><h2>Points by indicator</h2>'
    if not rows:
        return head + "<p>No indicator or counter-indicator fired.</p></section>"
    most = max((p for _, p, _ in rows if p > 0), default=0)
    least = max((-p for _, p, _ in rows if p < 0), default=0)
    span = (most + least) or 1
    plot = _CHART_WIDTH - 2 * _PAD - 2 * _VALUE_ROOM
    axis = _PAD + _VALUE_ROOM + plot * least / span
    height = len(rows) * _ROW + 2 * _PAD
    bars = []
    for n, (label, points, kind) in enumerate(rows):
        y = _PAD + n * _ROW
        width = max(plot * abs(points) / span, 1.0)
        x = axis if points >= 0 else axis - width
        fill = _POSITIVE if points >= 0 else _NEGATIVE
        shown = label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"
        name = f"{label}: {points:+d} points ({kind})"
        value_x, anchor = (x + width + 4, "start") if points >= 0 else (x - 4, "end")
        bars.append(
            f'<g class="bar-row" role="listitem" aria-label="{_e(name)}">'
            f"<title>{_e(name)}</title>"
            f'<text x="{_PAD}" y="{y + 14}" font-size="12.5" fill="#222">{_e(shown)}</text>'
            f'<rect class="bar {kind}" x="{x:.1f}" y="{y + 20}" width="{width:.1f}" '
            f'height="16" fill="{fill}"/>'
            f'<line x1="{axis:.1f}" y1="{y + 17}" x2="{axis:.1f}" y2="{y + 39}" '
            'stroke="#555" stroke-width="1"/>'
            f'<text x="{value_x:.1f}" y="{y + 32}" font-size="12" text-anchor="{anchor}" '
            f'fill="#222">{points:+d}</text></g>'
        )
    positives = sum(1 for _, p, _ in rows if p >= 0)
    description = (
        f"{positives} indicator(s) add points and {len(rows) - positives} counter-indicator(s) "
        "subtract points, before the group caps."
    )
    return (
        head + "<p>Points each indicator adds (dark red, to the right of the axis) and each "
        "counter-indicator subtracts (green, to the left), before the group caps.</p>"
        f'<svg class="chart" role="img" aria-labelledby="chart-title chart-desc" '
        f'viewBox="0 0 {_CHART_WIDTH} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet">'
        '<title id="chart-title">Points by indicator</title>'
        f'<desc id="chart-desc">{_e(description)}</desc>'
        f'<g role="list">{"".join(bars)}</g></svg></section>'
    )


# --- indicators, grounds, cases -------------------------------------------------------------


def _indicator(item: Mapping[str, Any], cite: _Citations) -> str:
    evidence = "".join(
        f"<tr><td><code>{_e(ev.get('field', ''))}</code></td>"
        f'<td dir="auto">{_e(ev.get("matched_text", ""))}</td>'
        f"<td><code>{_e(ev.get('knowledge_base_entry', ''))}</code></td></tr>"
        for ev in item.get("evidence") or []
    )
    evidence_html = (
        '<table class="grid evidence"><thead><tr><th scope="col">Field</th>'
        '<th scope="col">Matched text</th><th scope="col">Knowledge-base entry</th></tr>'
        f"</thead><tbody>{evidence}</tbody></table>"
        if evidence
        else ""
    )
    patterns = item.get("patterns") or []
    patterns_html = (
        "<p>Documented patterns: " + ", ".join(f"<code>{_e(p)}</code>" for p in patterns) + "</p>"
        if patterns
        else ""
    )
    points = int(item.get("points", 0))
    return (
        '<article class="item">'
        f"<h3>{_e(item.get('label', ''))}{cite.marks(item.get('source_ids') or [])}</h3>"
        f'<p class="meta"><strong>{points:+d} points</strong> · group '
        f"<code>{_e(item.get('group', ''))}</code> · <code>{_e(item.get('code', ''))}</code></p>"
        f"<p>{_e(item.get('explanation', ''))}</p>{evidence_html}{patterns_html}</article>"
    )


def _indicators(title: str, anchor: str, items: list[Any], none: str, cite: _Citations) -> str:
    body = "".join(_indicator(i, cite) for i in items) or f"<p>{none}</p>"
    return f'<section id="{anchor}"><h2>{title}</h2>{body}</section>'


_GROUND_STATUS = {
    "applies": "Applies on the facts given",
    "may_apply": "May apply: to be established",
    "check": "Check first: a condition is unconfirmed",
}


def _ground(g: Mapping[str, Any], cite: _Citations) -> str:
    status = str(g.get("status") or "")
    since = g.get("in_force_since")
    establish = "".join(f"<li>{_e(item)}</li>" for item in g.get("establish") or [])
    return (
        '<article class="item">'
        f"<h3>{_e(g.get('title', ''))}{cite.marks(g.get('source_ids') or [])}</h3>"
        f'<p class="meta"><strong class="ground-status">'
        f"{_e(_GROUND_STATUS.get(status, status))}</strong> · basis "
        f"<code>{_e(g.get('basis', ''))}</code>"
        + (f" · in force since {_e(since)}" if since else "")
        + "</p>"
        f"<p>{_e(g.get('explanation', ''))}</p>"
        + (f"<p>To establish or check:</p><ul>{establish}</ul>" if establish else "")
        + "</article>"
    )


def _grounds(items: list[Any], cite: _Citations) -> str:
    body = "".join(_ground(g, cite) for g in items)
    return (
        '<section id="grounds"><h2>Grounds to challenge the notice</h2>'
        f"{body or '<p>No challenge ground applies.</p>'}</section>"
    )


def _cases(items: list[Any], cite: _Citations) -> str:
    body = "".join(
        '<article class="item">'
        f"<h3>{_e(c.get('name', ''))}{cite.marks(c.get('source_ids') or [])}</h3>"
        f'<p class="meta">{_e(c.get("country", ""))} · {_e(c.get("year", ""))} · '
        f"documented as <strong>{_e(c.get('label', ''))}</strong></p>"
        f"<p>{_e(c.get('outcome', ''))}</p>"
        "<p>Shared with this screening: "
        + ", ".join(f"<code>{_e(s)}</code>" for s in c.get("shared") or [])
        + "</p></article>"
        for c in items
    )
    return (
        '<section id="cases"><h2>Similar documented cases</h2>'
        f"{body or '<p>No similar documented case.</p>'}</section>"
    )


def _missing(items: list[Any]) -> str:
    rows = "".join(
        f"<li><code>{_e(m.get('field', ''))}</code>: {_e(m.get('why', ''))}</li>" for m in items
    )
    body = f"<ul>{rows}</ul>" if rows else "<p>Nothing the screening could use is missing.</p>"
    return (
        '<section id="missing"><h2>Missing information</h2>'
        "<p>Giving these could change the result.</p>" + body + "</section>"
    )


def _url(url: str) -> str:
    if url.startswith(("https://", "http://")):
        return f'<a class="url" href="{_e(url)}" rel="noreferrer">{_e(url)}</a>'
    return _e(url)


def _sources(cite: _Citations) -> str:
    items = []
    for n, source_id in enumerate(cite.all_ids(), start=1):
        s = cite.sources[source_id]
        year = s.get("year")
        items.append(
            f'<li id="src-{n}"><cite>{_e(s.get("title", ""))}</cite>. '
            f"{_e(s.get('publisher', ''))}, {_e(year) if year else 'undated'}. "
            f"{_url(str(s.get('url', '')))}</li>"
        )
    body = f'<ol class="sources">{"".join(items)}</ol>' if items else "<p>No source cited.</p>"
    return (
        '<section id="sources"><h2>Sources</h2>'
        "<p>Numbered in the order they are first cited above.</p>" + body + "</section>"
    )


def _provenance(screening: Mapping[str, Any]) -> str:
    kb = screening.get("knowledge_base") or {}
    rows = [
        ("Screening id", screening.get("id")),
        ("Created at", screening.get("created_at")),
        ("Engine version", screening.get("engine_version")),
        ("Knowledge-base version", kb.get("version")),
        ("Knowledge-base SHA-256", kb.get("sha256")),
    ]
    dl = "".join(f"<dt>{name}</dt><dd><code>{_e(v)}</code></dd>" for name, v in rows)
    dl += (
        f'<dt>Result SHA-256</dt><dd><code id="result-sha256">'
        f"{canonical_sha256(screening)}</code></dd>"
    )
    return (
        '<section id="provenance"><h2>Provenance</h2>'
        f'<dl class="fields hash">{dl}</dl><p>{_e(CANONICAL_DEFINITION)}</p></section>'
    )


_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  color: #1d1d1d; background: #fff; max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; padding-bottom: .2rem;
  border-bottom: 1px solid #ccc; }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
.subtitle { color: #555; margin: 0 0 1rem; }
.disclaimer { border: 2px solid #7a5b00; background: #fff8e1; padding: .75rem 1rem;
  margin: 1rem 0; font-weight: 600; }
.flag, .return-risk { font-size: 1.15rem; }
.badge { display: inline-block; padding: .1rem .6rem; border-radius: .25rem; color: #fff;
  letter-spacing: .04em; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.flag-low .badge { background: #3d6b4f; }
.flag-elevated .badge { background: #8a6d00; }
.flag-high .badge { background: #b05a1e; }
.flag-severe .badge { background: #9b2d20; }
.score { margin-left: .5rem; }
table.grid { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
table.grid th, table.grid td { border: 1px solid #ccc; padding: .2rem .5rem;
  text-align: left; vertical-align: top; }
table.grid caption { text-align: left; font-weight: 600; padding-bottom: .2rem; }
tr.current th, tr.current td { font-weight: 700; background: #f1f1f1; }
table.evidence { width: 100%; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem;
  margin: .25rem 0; }
dl.fields dt { font-weight: 600; }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
ol.plain { margin: 0; padding-left: 1.2rem; }
.context { white-space: pre-wrap; }
.item { border-left: 3px solid #ddd; padding: 0 0 0 .75rem; margin: 1rem 0; }
.meta { color: #444; margin: .1rem 0; }
.refs { font-size: .75rem; font-weight: 400; }
.refs a { text-decoration: none; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .88em; }
.hash code { overflow-wrap: anywhere; }
svg.chart { display: block; max-width: 100%; height: auto; margin: .5rem 0; }
ol.sources li { margin: .25rem 0; overflow-wrap: anywhere; }
a { color: #1a4d8f; }
@media print {
  @page { size: A4; margin: 18mm 16mm 20mm; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h3 { break-after: avoid; page-break-after: avoid; }
  .item, .disclaimer, table.thresholds, tr { break-inside: avoid; page-break-inside: avoid; }
  svg.chart { break-inside: avoid; page-break-inside: avoid; display: block; }
  a { color: inherit; }
  a[href^="http"]:not(.url)::after { content: " (" attr(href) ")"; }
  .refs a::after { content: none; }
}
"""


def render(screening: Mapping[str, Any], request: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML5 document."""
    cite = _Citations(screening.get("sources") or {})
    flag = str(screening.get("flag", ""))
    disclaimer = _e(screening.get("disclaimer") or DISCLAIMER)
    # The numbered sections cite in document order, so they are rendered before the list.
    cited = (
        _indicators(
            "Indicators",
            "indicators",
            screening.get("indicators") or [],
            "No indicator fired.",
            cite,
        )
        + _indicators(
            "Counter-indicators",
            "counter-indicators",
            screening.get("counter_indicators") or [],
            "No counter-indicator fired.",
            cite,
        )
        + _indicators(
            "Return-risk indicators",
            "return-risk",
            (screening.get("return_risk") or {}).get("indicators") or [],
            "No return-risk indicator fired.",
            cite,
        )
        + _grounds(screening.get("challenge_grounds") or [], cite)
        + _cases(screening.get("similar_cases") or [], cite)
    )
    body = (
        "<header><h1>Notice screening report</h1>"
        f'<p class="subtitle">Screening <code>{_e(screening.get("id"))}</code>, created '
        f"{_e(screening.get('created_at'))}. Flag: {_e(_FLAG_WORDS.get(flag, flag))}.</p>"
        f'<p class="disclaimer" role="note">{disclaimer}</p></header>'
        "<main>"
        + _flag(screening)
        + _submitted(request)
        + _chart(screening)
        + cited
        + _missing(screening.get("missing_information") or [])
        + _sources(cite)
        + _provenance(screening)
        + '<section id="disclaimer"><h2>Disclaimer</h2>'
        f'<p class="disclaimer">{disclaimer}</p></section>'
        "</main>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Notice screening report: {_e(_FLAG_WORDS.get(flag, flag))}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )
