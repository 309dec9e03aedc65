"""Read, validate and hash the knowledge base's data files.

A release is the directory ``data/`` (or any directory of the same shape): YAML files, one list
of records per file, grouped by kind. Loading fails with :class:`KnowledgeBaseError` naming the
file and the record when anything is wrong; nothing half-loaded is ever returned.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from app.kb.compiled import Entry, Matcher
from app.kb.schema import (
    Baseline,
    Case,
    Country,
    CueSet,
    ExposureRole,
    Group,
    OffenceCategory,
    Pattern,
    ProfileTag,
    Provision,
    Release,
    Scoring,
    Source,
)

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_COUNTRY = "ZZ"

M = TypeVar("M", bound=BaseModel)


# Set only by the data authors' entry point below: check what exists while a release is written.
_PARTIAL = False


@dataclass(frozen=True, slots=True)
class Index:
    """Lookups derived once at load so that a screening's cost does not grow with the
    number of cases, patterns or sources."""

    cases_by_key: dict[str, tuple[str, ...]]  # "country:CN", "group:uyghur", "pattern:x", "tag:y"
    patterns_by_indicator: dict[str, tuple[str, ...]]
    source_urls: dict[str, str]


def build_index(
    cases: dict[str, Case], patterns: dict[str, Pattern], sources: dict[str, Source]
) -> Index:
    by_key: dict[str, list[str]] = {}
    for case in cases.values():
        keys = [f"country:{case.country}"] + [f"group:{g}" for g in case.groups]
        keys += [f"pattern:{p}" for p in case.patterns] + [f"tag:{t}" for t in case.profile_tags]
        for key in keys:
            by_key.setdefault(key, []).append(case.id)
    by_indicator: dict[str, list[str]] = {}
    for pattern in patterns.values():
        for code in pattern.indicators:
            by_indicator.setdefault(code, []).append(pattern.code)
    return Index(
        cases_by_key={k: tuple(sorted(v)) for k, v in by_key.items()},
        patterns_by_indicator={k: tuple(sorted(v)) for k, v in by_indicator.items()},
        source_urls={sid: str(src.url) for sid, src in sources.items()},
    )


class KnowledgeBaseError(ValueError):
    """The knowledge base's files are invalid; the message names the file and record."""


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    release: Release
    sha256: str
    scoring: Scoring
    sources: dict[str, Source]
    countries: dict[str, Country]
    patterns: dict[str, Pattern]
    provisions: dict[str, Provision]
    groups: dict[str, Group]
    profile_tags: dict[str, ProfileTag]
    offence_categories: dict[str, OffenceCategory]
    cases: dict[str, Case]
    cues: dict[str, CueSet]
    exposure_roles: dict[str, ExposureRole]
    baselines: dict[str, Baseline]
    matcher: Matcher
    index: Index

    @property
    def version(self) -> str:
        return self.release.version

    def country(self, iso2: str | None) -> Country:
        """The profile of a requesting state, or the default profile for undocumented states."""
        return self.countries.get((iso2 or "").upper()) or self.countries[DEFAULT_COUNTRY]

    def baseline(self, iso2: str | None) -> Baseline | None:
        """Global, dated indicators for a member state, if the release has them."""
        return self.baselines.get((iso2 or "").upper())

    def counts(self) -> dict[str, int]:
        return {
            "sources": len(self.sources),
            "countries": len(self.countries) - (DEFAULT_COUNTRY in self.countries),
            "patterns": len(self.patterns),
            "provisions": len(self.provisions),
            "groups": len(self.groups),
            "profile_tags": len(self.profile_tags),
            "offence_categories": len(self.offence_categories),
            "cases": len(self.cases),
            "indicators": len(self.scoring.indicators),
            "exposure_roles": len(self.exposure_roles),
            "baselines": len(self.baselines),
        }


# libyaml's safe loader parses the same YAML as the pure-Python one, about ten times faster.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeBaseError(f"{path.name}: cannot be read as YAML: {exc}") from None


Files = dict[str, Any]
"""A release's content: each data file's relative POSIX path (``sources/asia.yaml``) mapped to
its parsed content. Read from a directory (``read_files``) or from an uploaded bundle."""

# Used with fullmatch: "$" alone also matches before a final newline ("x.yaml\n").
FILE_NAME = re.compile(r"(?:[a-z0-9_-]+/){0,3}[a-z0-9_-]+\.yaml")
MAX_FILES = 500


def read_files(root: Path = DATA_DIR) -> Files:
    """Every ``*.yaml`` under ``root``, parsed, by relative path."""
    return {
        path.relative_to(root).as_posix(): _read_yaml(path) for path in sorted(root.rglob("*.yaml"))
    }


def _files(files: Files, name: str) -> list[str]:
    """``name.yaml`` and every ``*.yaml`` directly in the folder ``name/``, in a stable order."""
    single = f"{name}.yaml"
    found = [single] if single in files else []
    prefix = f"{name}/"
    found += sorted(
        rel for rel in files if rel.startswith(prefix) and "/" not in rel[len(prefix) :]
    )
    return found


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _records(files: Files, name: str, model: type[M], key: str) -> dict[str, M]:
    out: dict[str, M] = {}
    for rel in _files(files, name):
        raw = files[rel]
        if raw is None:
            continue
        if not isinstance(raw, list):
            raise KnowledgeBaseError(f"{rel}: expected a list of records")
        for index, item in enumerate(raw):
            label = item.get(key) if isinstance(item, dict) else None
            where = f"{rel}: record {index}" + (f" ({label})" if label else "")
            try:
                record = model.model_validate(item)
            except ValidationError as exc:
                raise KnowledgeBaseError(f"{where}: {_problems(exc)}") from None
            ident = getattr(record, key)
            if ident in out:
                raise KnowledgeBaseError(f"{where}: duplicate {key} {ident!r}")
            out[ident] = record
    return out


def _check_refs(where: str, refs: Iterable[str], known: dict[str, Any], kind: str) -> None:
    if not known and _PARTIAL:
        return
    missing = sorted(set(refs) - known.keys())
    if missing:
        raise KnowledgeBaseError(f"{where}: unknown {kind} {', '.join(missing)}")


def canonical_sha256(content: Path | Files = DATA_DIR) -> str:
    """sha256 over the parsed content of every data file, independent of YAML formatting (and
    so the same for a directory and for the bundle made from it)."""
    files = read_files(content) if isinstance(content, Path) else content
    digest = hashlib.sha256()
    for rel in sorted(files):
        text = json.dumps(files[rel], sort_keys=True, ensure_ascii=False, default=str)
        digest.update(rel.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def load(root: Path = DATA_DIR) -> KnowledgeBase:
    """Load and validate a release directory. Raises :class:`KnowledgeBaseError`."""
    return load_files(read_files(root))


def load_files(files: Files) -> KnowledgeBase:
    """Load and validate a release from its files (a directory read by ``read_files`` or an
    uploaded bundle). Raises :class:`KnowledgeBaseError`; nothing half-loaded is returned."""
    if len(files) > MAX_FILES:
        raise KnowledgeBaseError(f"a release has at most {MAX_FILES} files")
    for rel in files:
        if not isinstance(rel, str) or not FILE_NAME.fullmatch(rel):
            raise KnowledgeBaseError(
                "file names are relative paths of lower-case words "
                "(a-z, 0-9, _ and -) ending in .yaml"
            )
    try:
        release = Release.model_validate(files.get("release.yaml"))
    except ValidationError as exc:
        raise KnowledgeBaseError(f"release.yaml: {_problems(exc)}") from None
    try:
        scoring = Scoring.model_validate(files.get("scoring.yaml"))
    except ValidationError as exc:
        raise KnowledgeBaseError(f"scoring.yaml: {_problems(exc)}") from None

    groups = _records(files, "vocabularies/groups", Group, "id")
    profile_tags = _records(files, "vocabularies/profile_tags", ProfileTag, "id")
    categories = _records(files, "vocabularies/offence_categories", OffenceCategory, "id")
    provisions = _records(files, "provisions", Provision, "id")
    cues = _records(files, "vocabularies/cues", CueSet, "id")
    exposure = _records(files, "vocabularies/political_exposure", ExposureRole, "id")
    sources = _records(files, "sources", Source, "id")
    patterns = _records(files, "patterns", Pattern, "code")
    cases = _records(files, "cases", Case, "id")
    kb = KnowledgeBase(
        release=release,
        sha256=canonical_sha256(files),
        scoring=scoring,
        sources=sources,
        countries=_records(files, "countries", Country, "iso2"),
        patterns=patterns,
        provisions=provisions,
        groups=groups,
        profile_tags=profile_tags,
        offence_categories=categories,
        cases=cases,
        cues=cues,
        exposure_roles=exposure,
        baselines=_records(files, "baselines", Baseline, "iso2"),
        matcher=compile_matcher(groups, profile_tags, categories, provisions, cues, exposure),
        index=build_index(cases, patterns, sources),
    )
    validate_references(kb)
    return kb


def compile_matcher(
    groups: dict[str, Group],
    tags: dict[str, ProfileTag],
    categories: dict[str, OffenceCategory],
    provisions: dict[str, Provision],
    cues: dict[str, CueSet],
    exposure: dict[str, ExposureRole] | None = None,
) -> Matcher:
    """One automaton over every vocabulary term, built once per release."""
    entries: list[Entry] = []
    kinds: tuple[tuple[str, dict[str, Any]], ...] = (
        ("group", groups),
        ("tag", tags),
        ("category", categories),
        ("cue", cues),
        ("exposure", exposure or {}),
    )
    for kind, records in kinds:
        for ref, rec in records.items():
            entries += [Entry(kind, ref, t) for t in rec.terms]
    for ref, prov in provisions.items():
        entries += [Entry("provision", ref, t) for t in prov.charge_terms]
    return Matcher(entries)


def _cited(kb: KnowledgeBase) -> Iterator[tuple[str, list[str]]]:
    for c in kb.countries.values():
        for i, f in enumerate(c.findings):
            yield f"countries {c.iso2} findings[{i}]", f.source_ids
        for i, f in enumerate(c.extradition_refusals):
            yield f"countries {c.iso2} extradition_refusals[{i}]", f.source_ids
        yield f"countries {c.iso2} torture_risk", c.torture_risk.source_ids
        for i, m in enumerate(c.measures):
            yield f"countries {c.iso2} measures[{i}]", m.source_ids
    for p in kb.patterns.values():
        yield f"patterns {p.code}", p.source_ids
    for pr in kb.provisions.values():
        yield f"provisions {pr.id}", pr.source_ids
    for g in kb.groups.values():
        yield f"groups {g.id}", g.source_ids
    for t in kb.profile_tags.values():
        yield f"profile_tags {t.id}", t.source_ids
    for o in kb.offence_categories.values():
        yield f"offence_categories {o.id}", o.source_ids
    for r in kb.exposure_roles.values():
        yield f"political_exposure {r.id}", r.source_ids
    for b in kb.baselines.values():
        if b.admitted is not None:
            yield f"baselines {b.iso2} admitted", [b.admitted.source_id]
        if b.freedom_in_the_world is not None:
            yield f"baselines {b.iso2} freedom_in_the_world", [b.freedom_in_the_world.source_id]
        if b.transnational_repression is not None:
            yield (
                f"baselines {b.iso2} transnational_repression",
                [b.transnational_repression.source_id],
            )
    for cs in kb.cases.values():
        yield f"cases {cs.id}", cs.source_ids
    for ind in kb.scoring.indicators.values():
        yield f"scoring indicator {ind.code}", ind.source_ids
    for gr in kb.scoring.challenge_grounds.values():
        yield f"scoring challenge ground {gr.basis}", gr.source_ids


def validate_references(kb: KnowledgeBase) -> None:
    """Every cross-reference resolves, and every source is cited somewhere."""
    if DEFAULT_COUNTRY not in kb.countries and not _PARTIAL:
        raise KnowledgeBaseError(f"countries: the default profile {DEFAULT_COUNTRY} is missing")
    cited: set[str] = set()
    for where, ids in _cited(kb):
        _check_refs(where, ids, kb.sources, "source")
        cited.update(ids)
    for c in kb.countries.values():
        _check_refs(f"countries {c.iso2}", c.patterns, kb.patterns, "pattern")
        _check_refs(f"countries {c.iso2}", c.targeted_groups, kb.groups, "group")
    for p in kb.patterns.values():
        _check_refs(f"patterns {p.code}", p.indicators, kb.scoring.indicators, "indicator")
    for pr in kb.provisions.values():
        _check_refs(f"provisions {pr.id}", [pr.category], kb.offence_categories, "category")
    for cs in kb.cases.values():
        _check_refs(f"cases {cs.id}", cs.patterns, kb.patterns, "pattern")
        _check_refs(f"cases {cs.id}", cs.groups, kb.groups, "group")
        _check_refs(f"cases {cs.id}", cs.profile_tags, kb.profile_tags, "profile tag")
    _check_refs(
        "scoring dissident_profile_tags",
        kb.scoring.dissident_profile_tags,
        kb.profile_tags,
        "profile tag",
    )
    for gr in kb.scoring.challenge_grounds.values():
        _check_refs(
            f"scoring challenge ground {gr.basis}", gr.triggers, kb.scoring.indicators, "indicator"
        )
    for pt in kb.patterns.values():
        _check_refs(
            f"patterns {pt.code} levels", list(pt.levels), kb.scoring.indicators, "indicator"
        )
    uncited = sorted(kb.sources.keys() - cited)
    if uncited and not _PARTIAL:
        raise KnowledgeBaseError(f"sources: never cited: {', '.join(uncited)}")


if __name__ == "__main__":  # pragma: no cover - a convenience for data authors
    import sys

    args = sys.argv[1:]
    if "--partial" in args:
        args.remove("--partial")
        _PARTIAL = True
    try:
        loaded = load(Path(args[0]) if args else DATA_DIR)
    except KnowledgeBaseError as err:
        print(f"invalid: {err}")
        raise SystemExit(1) from None
    print(json.dumps({"version": loaded.version, "sha256": loaded.sha256, **loaded.counts()}))
