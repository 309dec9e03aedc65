"""Cost of verifying one client secret: HMAC-SHA-256 under its sealed pepper (now) against the
Argon2id hash it replaces (still verified once per legacy client, then replaced).

    .venv/bin/python bench/secret_bench.py

Prints the median wall time per verification over several rounds and the peak memory one
Argon2id verification allocates (its memory cost parameter).
"""

from __future__ import annotations

import os
import statistics
import time

from app.auth import (
    SecretHasher,
    hash_secret,
    new_client_secret,
    verify_legacy_secret,
)


def _median_seconds(fn: object, n: int, rounds: int = 5) -> float:
    assert callable(fn)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def main() -> None:
    secret = new_client_secret()
    hasher = SecretHasher(os.urandom(32))
    peppered = hasher.hash(secret, client_id="cl_bench")
    legacy = hash_secret(secret)
    hmac_s = _median_seconds(lambda: hasher.verify(peppered, secret, client_id="cl_bench"), 20_000)
    argon_s = _median_seconds(lambda: verify_legacy_secret(legacy, secret), 20)
    params = legacy.split("$")[3]
    print(f"hmac-sha256 verify: median {hmac_s * 1e6:.1f} us")
    print(f"argon2id verify ({params}): median {argon_s * 1e3:.1f} ms")
    print(f"ratio: {argon_s / hmac_s:,.0f}x")


if __name__ == "__main__":
    main()
