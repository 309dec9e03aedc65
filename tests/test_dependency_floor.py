"""Security-relevant packages are at or above the releases that fixed their known advisories."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.version import Version

# package, first fixed release, advisories it fixed
FLOORS = [
    ("python-jose", "3.4.0", "CVE-2024-33663 (algorithm confusion), CVE-2024-33664 (JWE bomb)"),
    ("python-multipart", "0.0.18", "CVE-2024-53981 (DoS before the first boundary)"),
    ("python-multipart", "0.0.31", "GHSA-v9pg-7xvm-68hf (negative Content-Length buffers body)"),
    ("starlette", "0.40.0", "CVE-2024-47874 (unbounded multipart form fields)"),
    ("starlette", "1.3.0", "CVE-2026-54282 (request path poisons request.url host)"),
    ("starlette", "1.3.1", "CVE-2026-54283 (form limits ignored for url-encoded bodies)"),
    ("h11", "0.16.0", "CVE-2025-43859 (lenient chunked-encoding parsing)"),
    # cryptography seals every stored screening; its wheels bundle OpenSSL.
    ("cryptography", "44.0.1", "OpenSSL in the 42.0.0-44.0.0 wheels (secadv 2025-02-11)"),
    ("cryptography", "48.0.1", "GHSA-537c-gmf6-5ccf (OpenSSL in wheels before 48.0.1)"),
]


@pytest.mark.parametrize(("package", "floor", "advisory"), FLOORS)
def test_installed_version_is_at_or_above_the_fix(package: str, floor: str, advisory: str) -> None:
    installed = Version(version(package))
    assert installed >= Version(floor), f"{package} {installed} < {floor}: {advisory}"


def test_summary() -> None:
    below = [p for p, f, _ in FLOORS if Version(version(p)) < Version(f)]
    print(
        f"SECMETRIC T37 packages={len({p for p, _, _ in FLOORS})} advisories={len(FLOORS)} "
        f"below_floor={len(below)}"
    )
    assert below == []
