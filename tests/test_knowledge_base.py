"""The knowledge base: validity, coverage, version pinning, matching, and the read API."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.kb.loader import DATA_DIR, DEFAULT_COUNTRY, KnowledgeBase, KnowledgeBaseError, load

# Changing any data file changes the hash: bump release.yaml's version and update both here.
PINNED_VERSION = "2.2.0"
PINNED_SHA256 = "f708197dba1e8f48aede71ca13e5e11882b524ee057e14046f544ec1649b8f1d"

REQUIRED_COUNTRIES = {
    "CN",
    "RU",
    "TR",
    "TJ",
    "UZ",
    "KZ",
    "BY",
    "AZ",
    "BH",
    "EG",
    "AE",
    "SA",
    "IR",
    "VE",
    "RW",
}


def test_release_version_and_hash_are_pinned(kb: KnowledgeBase) -> None:
    assert kb.version == PINNED_VERSION
    assert kb.sha256 == PINNED_SHA256, (
        "the knowledge base changed: bump release.yaml's version and pin the new sha256"
    )


def test_coverage_targets(kb: KnowledgeBase) -> None:
    counts = kb.counts()
    print("KBSTATS " + " ".join(f"{k}={v}" for k, v in counts.items()))
    assert counts["sources"] >= 50
    assert counts["provisions"] >= 60
    assert counts["patterns"] >= 30
    assert counts["cases"] >= 40
    assert set(kb.countries) >= REQUIRED_COUNTRIES
    assert DEFAULT_COUNTRY in kb.countries
    labels = {c.label.value for c in kb.cases.values()}
    assert {"abusive", "legitimate"} <= labels


def test_everything_cites_and_every_source_is_cited(kb: KnowledgeBase) -> None:
    cited: set[str] = set()
    for p in kb.patterns.values():
        assert p.source_ids, p.code
        cited |= set(p.source_ids)
    for pr in kb.provisions.values():
        assert pr.source_ids, pr.id
        cited |= set(pr.source_ids)
    for c in kb.countries.values():
        for f in [*c.findings, *c.extradition_refusals]:
            assert f.source_ids, c.iso2
            cited |= set(f.source_ids)
        cited |= set(c.torture_risk.source_ids)
        if c.torture_risk.level.value != "none":
            assert c.torture_risk.source_ids, c.iso2
    for cs in kb.cases.values():
        assert cs.source_ids, cs.id
        cited |= set(cs.source_ids)
    for rec in [
        *kb.groups.values(),
        *kb.profile_tags.values(),
        *kb.offence_categories.values(),
        *kb.exposure_roles.values(),
    ]:
        assert rec.source_ids
        cited |= set(rec.source_ids)
    for b in kb.baselines.values():
        for part in (b.admitted, b.freedom_in_the_world, b.transnational_repression):
            if part is not None:
                cited.add(part.source_id)
    for ind in kb.scoring.indicators.values():
        cited |= set(ind.source_ids)
    for gr in kb.scoring.challenge_grounds.values():
        cited |= set(gr.source_ids)
    assert cited <= set(kb.sources)
    assert set(kb.sources) <= cited


def test_every_indicator_has_a_rule_and_every_rule_an_indicator(kb: KnowledgeBase) -> None:
    from app.engine.rules import RULES

    assert set(RULES) == set(kb.scoring.indicators)


def test_every_profile_tag_of_the_api_is_in_the_vocabulary(kb: KnowledgeBase) -> None:
    from app.engine.inputs import ProfileTag

    assert {t.value for t in ProfileTag} <= set(kb.profile_tags)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(DATA_DIR, root)
    return root


def _edit(path: Path, change: Any) -> None:
    records = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(records)
    path.write_text(yaml.safe_dump(records, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (
            "patterns.yaml",
            lambda r: r[0].update(source_ids=["no-such-source"]),
            "unknown source no-such-source",
        ),
        ("patterns.yaml", lambda r: r[0].update(colour="red"), "colour: Extra inputs"),
        ("cases.yaml", lambda r: r.append(dict(r[0])), "duplicate id"),
        ("cases.yaml", lambda r: r[0].update(patterns=["not_a_pattern"]), "unknown pattern"),
        ("countries/cn.yaml", lambda r: r[0].update(targeted_groups=["martians"]), "unknown group"),
    ],
)
def test_load_failures_name_the_file_and_record(
    tmp_path: Path, file: str, change: Any, message: str
) -> None:
    root = _copy(tmp_path)
    _edit(root / file, change)
    with pytest.raises(KnowledgeBaseError) as err:
        load(root)
    text = str(err.value)
    assert message in text
    assert Path(file).stem.lower() in text.lower()


def test_bad_url_and_uncited_source_are_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "sources" / "core.yaml", lambda r: r[0].update(url="not a url"))
    with pytest.raises(KnowledgeBaseError, match="url"):
        load(root)
    root2 = _copy(tmp_path / "two")
    _edit(root2 / "sources" / "core.yaml", lambda r: r.append({**r[0], "id": "never-cited-source"}))
    with pytest.raises(KnowledgeBaseError, match="never cited: never-cited-source"):
        load(root2)


def test_hash_ignores_formatting_but_not_content(tmp_path: Path, kb: KnowledgeBase) -> None:
    root = _copy(tmp_path)
    path = root / "patterns.yaml"
    path.write_text("# a comment\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert load(root).sha256 == kb.sha256
    _edit(path, lambda r: r[0].update(name=r[0]["name"] + " (edited)"))
    assert load(root).sha256 != kb.sha256


@pytest.mark.parametrize(
    ("text", "kind", "ref"),
    [
        ("Uighur", "group", "uyghur"),
        ("维吾尔族", "group", "uyghur"),
        ("Уйгур", "group", "uyghur"),
        ("Falun Dafa practitioner", "group", "falun_gong"),
        ("法轮功学员", "group", "falun_gong"),
        ("FETÖ/PDY üyeliği", "group", "gulen_movement"),
        ("Свидетели Иеговы", "group", "jehovahs_witnesses"),
        ("Hizb ut-Tahrir", "group", "hizb_ut_tahrir"),
        ("الإخوان المسلمين", "group", "muslim_brotherhood"),
        ("Islamic Renaissance Party of Tajikistan", "group", "irpt"),
        ("investigative journalist", "tag", "journalist"),
        ("gazeteci", "tag", "journalist"),
        ("murder of two people", "category", "violent"),
        ("мошенничество в особо крупном размере", "category", "fraud_economic"),
        ("组织、利用邪教组织破坏法律实施罪", "provision", "cn-cl-300"),
    ],
)
def test_matcher_reads_many_languages(kb: KnowledgeBase, text: str, kind: str, ref: str) -> None:
    hits = {(h.kind, h.ref) for h in kb.matcher.find(text) if not h.negated}
    assert (kind, ref) in hits, sorted(hits)


@pytest.mark.parametrize(
    "text",
    [
        "He is not a member of Hizb ut-Tahrir",
        "Hizb ut-Tahrir üyesi değildir",
        "has never been a member of Hizb ut-Tahrir",
    ],
)
def test_negated_mentions_are_marked(kb: KnowledgeBase, text: str) -> None:
    hits = [h for h in kb.matcher.find(text) if h.ref == "hizb_ut_tahrir"]
    assert hits
    assert all(h.negated for h in hits)


@pytest.mark.anyio
async def test_read_api_serves_everything_with_pagination(
    client: httpx.AsyncClient, auth_a: dict[str, str], kb: KnowledgeBase
) -> None:
    info = (await client.get("/v1/knowledge", headers=auth_a)).json()
    assert info["version"] == kb.version
    assert info["sha256"] == kb.sha256
    for kind, key, total in [
        ("sources", "id", len(kb.sources)),
        ("patterns", "code", len(kb.patterns)),
        ("countries", "iso2", len(kb.countries)),
        ("provisions", "id", len(kb.provisions)),
        ("cases", "id", len(kb.cases)),
    ]:
        seen: list[str] = []
        cursor = None
        while True:
            url = f"/v1/knowledge/{kind}?limit=37" + (f"&cursor={cursor}" if cursor else "")
            r = await client.get(url, headers=auth_a)
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [item[key] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == total, kind


@pytest.mark.anyio
async def test_read_api_items_filters_and_etag(
    client: httpx.AsyncClient, auth_a: dict[str, str], kb: KnowledgeBase
) -> None:
    source_id = next(iter(kb.sources))
    r = await client.get(f"/v1/knowledge/sources/{source_id}", headers=auth_a)
    assert r.status_code == 200
    assert r.json()["id"] == source_id
    etag = r.headers["etag"]
    again = await client.get(
        f"/v1/knowledge/sources/{source_id}", headers={**auth_a, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert (await client.get("/v1/knowledge/sources/nope", headers=auth_a)).status_code == 404
    assert (await client.get("/v1/knowledge/countries/cn", headers=auth_a)).json()["iso2"] == "CN"
    assert (await client.get("/v1/knowledge/countries/FR", headers=auth_a)).json()["iso2"] == "ZZ"
    ru = (
        await client.get("/v1/knowledge/provisions?jurisdiction=RU&limit=200", headers=auth_a)
    ).json()["items"]
    assert ru
    assert {p["jurisdiction"] for p in ru} == {"RU"}
    code = next(iter(kb.patterns))
    assert (await client.get(f"/v1/knowledge/patterns/{code}", headers=auth_a)).status_code == 200
    tr = (await client.get("/v1/knowledge/cases?country=TR", headers=auth_a)).json()["items"]
    assert {c["country"] for c in tr} == {"TR"}
    some_case = next(iter(kb.cases.values()))
    if some_case.patterns:
        pat = some_case.patterns[0]
        hits = (
            await client.get(f"/v1/knowledge/cases?pattern={pat}&limit=200", headers=auth_a)
        ).json()["items"]
        assert all(pat in c["patterns"] for c in hits)
        assert some_case.id in {c["id"] for c in hits}


def test_every_ground_condition_the_engine_names_is_worded(kb: KnowledgeBase) -> None:
    """The engine decides which conditions of a ground hold; the knowledge base words each
    one. A condition without words would silently drop what the lawyer must establish."""
    from app.engine.grounds import ASSESS, CONDITIONS

    assert set(ASSESS) == set(kb.scoring.challenge_grounds) == set(CONDITIONS)
    for basis, spec in kb.scoring.challenge_grounds.items():
        assert set(spec.conditions) == CONDITIONS[basis], basis
        assert spec.establish, f"{basis}: says nothing about what must be established"


def test_dated_rules_carry_their_dates(kb: KnowledgeBase) -> None:
    grounds = kb.scoring.challenge_grounds
    assert grounds["refugee_policy"].in_force_since == "2015"
    assert grounds["ccf_request"].in_force_since == "2017-03-11"
    (measure,) = kb.countries["RU"].measures
    assert (measure.kind.value, measure.since) == ("diffusion_prior_review", "2022-03-10")
