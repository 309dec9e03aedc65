"""Batch uploads and downloads: JSON arrays, NDJSON and CSV, item by item. No framework.

Parsing never fails on one bad item: each item becomes either a valid request or a list of
problems (row, field, problem; never the submitted value). Only an upload that cannot be read
at all (not UTF-8, not the declared format, too many items) is refused whole.

CSV has one column per field (``CSV_COLUMNS``; ``GET /v1/batches/template.csv``); list fields
hold their values separated by ``;``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.engine import ScreeningInput

MAX_ITEMS = 50_000
MAX_CLIENT_REF = 200
# No request field nests deeper than a few levels: an item nested deeper is that item's
# problem, and one past the interpreter's recursion limit must not fail the whole upload.
MAX_DEPTH = 16
# The longest CSV field any column can hold (the longest text field is 8,000 characters);
# the csv module's own limit (131,072, process-wide) refuses the upload beyond it.
MAX_CSV_FIELD = 10_000
# The longest NDJSON line, JSON array item or CSV line read (a screening request is at most
# about a megabyte): a longer NDJSON line is that item's problem, anything else refuses the
# upload. Uploads are read as a stream, so this bounds what one item can hold in memory.
MAX_LINE_CHARS = 1_048_576
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
LIST_SEPARATOR = ";"

# column -> (section, field, kind); kind: text | list | bool | int
CSV_COLUMNS: dict[str, tuple[str, str, str]] = {
    "client_ref": ("", "client_ref", "text"),
    "full_name": ("subject", "full_name", "text"),
    "aliases": ("subject", "aliases", "list"),
    "date_of_birth": ("subject", "date_of_birth", "text"),
    "nationalities": ("subject", "nationalities", "list"),
    "residence_country": ("subject", "residence_country", "text"),
    "ethnicity": ("subject", "ethnicity", "text"),
    "religion": ("subject", "religion", "text"),
    "occupation": ("subject", "occupation", "text"),
    "political_activity": ("subject", "political_activity", "text"),
    "affiliations": ("subject", "affiliations", "list"),
    "profile_tags": ("subject", "profile_tags", "list"),
    "refugee_status": ("refugee_status", "status", "text"),
    "refugee_granted_by": ("refugee_status", "granted_by", "text"),
    "refugee_year": ("refugee_status", "year", "int"),
    "refugee_persecution_country": ("refugee_status", "persecution_country", "text"),
    "left_requesting_country_year": ("subject", "left_requesting_country_year", "int"),
    "notice_type": ("notice", "type", "text"),
    "issuing_country": ("notice", "issuing_country", "text"),
    "interpol_reference": ("notice", "interpol_reference", "text"),
    "issued_date": ("notice", "issued_date", "text"),
    "charges": ("notice", "charges", "text"),
    "legal_provisions": ("notice", "legal_provisions", "list"),
    "conviction_in_absentia": ("notice", "conviction_in_absentia", "bool"),
    "warrant_authority": ("notice", "warrant_authority", "text"),
    "public": ("notice", "public", "bool"),
    "context": ("", "context", "text"),
}
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


class UploadError(ValueError):
    """The upload as a whole cannot be read; the message names the problem, not the data."""


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    field: str
    problem: str


@dataclass(slots=True)
class Item:
    row: int  # 1-based position in the upload (the line for NDJSON, the data row for CSV)
    client_ref: str | None = None
    request: ScreeningInput | None = None
    problems: list[Problem] = field(default_factory=list)


def csv_template() -> str:
    """The header row and one example row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    example = {
        "client_ref": "case-0001",
        "ethnicity": "Uyghur",
        "profile_tags": "activist;journalist",
        "refugee_status": "recognised",
        "refugee_granted_by": "DE",
        "notice_type": "red_notice",
        "issuing_country": "CN",
        "charges": "participating in a terrorist organisation",
        "legal_provisions": "Article 120 of the Criminal Law of the PRC",
    }
    writer.writerow([example.get(c, "") for c in CSV_COLUMNS])
    return out.getvalue()


def parse(data: bytes, media_type: str) -> list[Item]:
    """Items of an upload in ``application/json`` (an array), ``application/x-ndjson`` or
    ``text/csv``, all in memory (the command line, tests)."""
    return list(parse_stream([data], media_type))


def parse_stream(chunks: Iterable[bytes], media_type: str) -> Iterator[Item]:
    """Items of an upload read chunk by chunk: memory holds one chunk and the item being
    read, never the whole upload. Raises UploadError (possibly after some items) when the
    upload as a whole cannot be read."""
    texts = _decoded(chunks)
    raw: Iterator[tuple[int, Any]]
    if media_type == "application/json":
        raw = _json_array(texts)
    elif media_type in ("application/x-ndjson", "application/jsonl"):
        raw = _ndjson(texts)
    elif media_type == "text/csv":
        raw = _csv(texts)
    else:
        raise UploadError("send application/json, application/x-ndjson or text/csv")
    count = 0
    for row, value in raw:
        count += 1
        if count > MAX_ITEMS:
            raise UploadError(f"at most {MAX_ITEMS} items per batch")
        yield _item(row, value)
    if not count:
        raise UploadError("the upload holds no items")


def _decoded(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text of the chunks (a leading byte-order mark dropped), chunk by chunk."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        for chunk in chunks:
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UploadError("the upload is not UTF-8") from None
    if text:
        yield text


def _lines(texts: Iterable[str]) -> Iterator[str | None]:
    """NDJSON lines, split at ``\n``; ``None`` for a line longer than MAX_LINE_CHARS, whose
    text is skipped rather than held."""
    pending: list[str] = []
    pending_len = 0
    too_long = False
    for text in texts:
        start = 0
        while True:
            end = text.find("\n", start)
            if end < 0:
                rest = text[start:]
                if not too_long and rest:
                    pending.append(rest)
                    pending_len += len(rest)
                    if pending_len > MAX_LINE_CHARS:
                        pending, pending_len, too_long = [], 0, True
                break
            piece = text[start:end]
            if too_long or pending_len + len(piece) > MAX_LINE_CHARS:
                yield None
            else:
                pending.append(piece)
                yield "".join(pending)
            pending, pending_len, too_long = [], 0, False
            start = end + 1
    if too_long:
        yield None
    elif pending:
        yield "".join(pending)


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_DELIMITERS = frozenset(" \t\n\r,]")


def _json_array(texts: Iterator[str]) -> Iterator[tuple[int, Any]]:
    """Items of a JSON array read incrementally: each item is decoded once it is complete
    (at most MAX_LINE_CHARS long), so only the item being read is held."""
    decoder = json.JSONDecoder()
    buf, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buf, pos, eof
        for text in texts:
            buf, pos = buf[pos:] + text, 0
            return True
        eof = True
        return False

    def peek() -> str:
        nonlocal pos
        while True:
            match = _JSON_SPACE.match(buf, pos)
            pos = match.end() if match else pos
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    not_array = "the upload is not a JSON array"
    first = peek()
    if first != "[":
        raise UploadError(
            "a JSON upload is an array of screening requests" if first == "{" else not_array
        )
    pos += 1
    if peek() == "]":
        pos += 1
    else:
        number = 0
        while True:
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError:
                    if eof:
                        raise UploadError(not_array) from None
                    if len(buf) - pos > MAX_LINE_CHARS:
                        raise UploadError(
                            f"an item is longer than {MAX_LINE_CHARS} characters"
                        ) from None
                    more()
                    continue
                except RecursionError:
                    raise UploadError("the upload is nested too deeply") from None
                # A number cut between two chunks decodes as a shorter one: a value counts
                # once a delimiter follows it (or the upload has ended).
                if (
                    (end < len(buf) and buf[end] in _JSON_DELIMITERS)
                    or len(buf) - pos > MAX_LINE_CHARS  # garbage after it: refused below
                    or eof
                    or not more()
                ):
                    break
            number += 1
            yield number, value
            pos = end
            separator = peek()
            pos += 1
            if separator == "]":
                break
            if separator != "," or peek() == "]":
                raise UploadError(not_array)
    if peek() != "":
        raise UploadError(not_array)


def _ndjson(texts: Iterable[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(_lines(texts), start=1):
        if line is None:
            yield number, _Unparseable(f"this line is longer than {MAX_LINE_CHARS} characters")
            continue
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            yield number, _Unparseable("this line is not JSON")
        except RecursionError:
            yield number, _Unparseable(f"nested more than {MAX_DEPTH} levels deep")


@dataclass(frozen=True, slots=True)
class _Unparseable:
    """A line that is not JSON: reported as that item's problem, not the batch's."""

    problem: str


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


_CSV_LINE_END = re.compile(r"\r\n|\r|\n")


def _csv_lines(texts: Iterable[str]) -> Iterator[str]:
    """Lines with their ends, split as a file opened with ``newline=""`` splits them (at
    ``\r\n``, ``\r`` or ``\n``: spreadsheets still write bare ``\r``), which is what the csv
    module expects; a ``\r`` that ends a chunk waits for the next one."""
    pending = ""
    for text in texts:
        buf = pending + text
        start = 0
        for end in _CSV_LINE_END.finditer(buf):
            if end.group() == "\r" and end.end() == len(buf):
                break  # perhaps the first half of a \r\n cut between two chunks
            yield buf[start : end.end()]
            start = end.end()
        pending = buf[start:]
        if len(pending) > MAX_LINE_CHARS:
            raise UploadError(f"a CSV line is longer than {MAX_LINE_CHARS} characters")
    if pending:
        yield pending


def _csv(texts: Iterable[str]) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(_csv_lines(texts))
    try:
        fieldnames = reader.fieldnames
    except csv.Error:  # a header field over the csv module's limit, a NUL, ...
        raise UploadError("the CSV upload's header row is malformed") from None
    if fieldnames is None:
        raise UploadError("the CSV upload has no header row")
    # A header is the client's data when it is not ours (a CSV without a header row has a
    # person's name there): problems name columns by position, never by their text.
    unknown = [n for n, c in enumerate(fieldnames, start=1) if c not in CSV_COLUMNS]
    if unknown:
        which = ", ".join(str(n) for n in unknown[:5])
        more = " and more" if len(unknown) > 5 else ""
        noun = "column" if len(unknown) == 1 else "columns"
        verb = "is not a known column" if len(unknown) == 1 else "are not known columns"
        raise UploadError(f"{noun} {which}{more} {verb}; see the template")
    try:
        for number, record in enumerate(reader, start=1):
            yield number, _from_csv(record)
    except csv.Error:
        raise UploadError("the CSV upload is malformed") from None


def _from_csv(record: dict[str, str | None]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for column, value in record.items():
        if column is None or value is None or not value.strip():
            continue
        if len(value) > MAX_CSV_FIELD:
            problems.append((column, f"longer than {MAX_CSV_FIELD} characters"))
            continue
        section, name, kind = CSV_COLUMNS[column]
        converted: Any = value.strip()
        if kind == "list":
            converted = [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
        elif kind == "bool":
            lowered = converted.lower()
            if lowered not in _TRUE | _FALSE:
                problems.append((column, "expected true or false"))
                continue
            converted = lowered in _TRUE
        elif kind == "int":
            if not converted.isdigit():
                problems.append((column, "expected a whole number"))
                continue
            converted = int(converted)
        if section == "refugee_status":
            body.setdefault("subject", {}).setdefault("refugee_status", {})[name] = converted
        elif section:
            body.setdefault(section, {})[name] = converted
        else:
            body[name] = converted
    if problems:
        body["__csv_problems__"] = problems
    return body


def _item(row: int, value: Any) -> Item:
    item = Item(row=row)
    if isinstance(value, _Unparseable):
        item.problems.append(Problem(row, "", value.problem))
        return item
    if not isinstance(value, dict):
        item.problems.append(Problem(row, "", "an item is a JSON object"))
        return item
    if _depth_exceeds(value, MAX_DEPTH):
        item.problems.append(Problem(row, "", f"nested more than {MAX_DEPTH} levels deep"))
        return item
    value = dict(value)
    for column, problem in value.pop("__csv_problems__", []):
        item.problems.append(Problem(row, column, problem))
    client_ref = value.pop("client_ref", None)
    if client_ref is not None:
        if (
            not isinstance(client_ref, str)
            or not 1 <= len(client_ref) <= MAX_CLIENT_REF
            or _BAD_TEXT.search(client_ref)
        ):
            item.problems.append(
                Problem(
                    row,
                    "client_ref",
                    f"a string of 1 to {MAX_CLIENT_REF} characters, without control "
                    "characters or lone surrogates",
                )
            )
        else:
            item.client_ref = client_ref
    try:
        request = ScreeningInput.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors():
            # Problems are stored in clear: an unknown key's name is the client's data (the
            # same rule as app.errors.safe_loc, which this module does not import).
            loc = [str(p) for p in error["loc"]]
            if error["type"] == "extra_forbidden" and loc:
                loc[-1] = "(unknown field)"
            item.problems.append(Problem(row, ".".join(loc), error["msg"]))
        return item
    if not item.problems:
        item.request = request
    return item
