"""The import rules of docs/architecture.md, read from the code itself."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# The pure core imports no edge: no web framework, ORM, HTTP client, settings or storage.
EDGES = (
    "app.api",
    "app.main",
    "app.db",
    "app.models",
    "app.settings",
    "fastapi",
    "starlette",
    "sqlmodel",
    "sqlalchemy",
    "httpx",
)

# module prefix -> prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "app.kb": ("app.engine", *EDGES),
    "app.engine": EDGES,
    "app.screenings": ("app.api", "app.main", "fastapi", "starlette"),
    "app.audit": ("app.api", "app.main", "fastapi", "starlette"),
    "app.tenancy": ("app.api", "app.main", "fastapi"),
    "app.auth": ("app.api", "app.main", "fastapi", "sqlmodel", "sqlalchemy"),
    "app.crypto": ("app", "fastapi", "starlette", "sqlmodel", "sqlalchemy"),
    "app.keys": ("app.api", "app.main", "app.settings", "fastapi", "starlette"),
    "app.revocation": ("app.api", "app.main", "fastapi", "starlette"),
    "app.retention": ("app.api", "app.main", "fastapi", "starlette"),
    "app.backup": ("app", "fastapi", "starlette", "sqlmodel", "sqlalchemy"),
    "app.webhooks": ("app.api", "app.main", "fastapi", "starlette"),
    "app.batches": ("app.api", "app.main", "fastapi", "starlette"),
    "app.releases": ("app.api", "app.main", "app.batches", "fastapi", "starlette"),
    "app.rescreen": ("app.api", "app.main", "app.batches", "fastapi", "starlette"),
    "app.batch_io": ("app.api", "app.main", "app.db", "fastapi", "sqlmodel", "sqlalchemy"),
    "app.report": (
        "app.api",
        "app.main",
        "app.db",
        "app.models",
        "fastapi",
        "starlette",
        "sqlmodel",
        "sqlalchemy",
    ),
}
NOBODY_IMPORTS = ("app.api", "app.main")  # except main (api) and the CLI (main, for serving)


def _module(path: Path) -> str:
    rel = path.relative_to(APP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_import_rules_hold() -> None:
    violations = []
    files = sorted(APP.rglob("*.py"))
    for path in files:
        module = _module(path)
        imports = _imports(path)
        for owner, banned in FORBIDDEN.items():
            if _matches(module, owner):
                violations += [
                    f"{module} imports {i}" for i in imports if any(_matches(i, b) for b in banned)
                ]
        if not (_matches(module, "app.api") or module in {"app.main", "app.cli", "app.openapi"}):
            violations += [
                f"{module} imports {i}"
                for i in imports
                if any(_matches(i, b) for b in NOBODY_IMPORTS)
            ]
    assert len(files) > 10
    assert violations == []


def test_only_auth_imports_jose() -> None:
    importers = [
        _module(p) for p in APP.rglob("*.py") if any(_matches(i, "jose") for i in _imports(p))
    ]
    assert importers == ["app.auth"]
