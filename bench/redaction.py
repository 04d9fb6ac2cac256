"""Redaction benchmark: what the root log filter costs per record with 0, 10 and 1,000 secrets.

Every log record of every logger passes :class:`~reconciler.secrets.redaction.RedactingFilter`
(``reconciler/telemetry/logging.py`` installs it on the root handlers), so its cost is paid on
each line the daemon writes. This measures, in one process, ``filter(record)`` on a typical
line that holds no secret (the common case: one regex search of the formatted message) and on a
line that holds one (the search plus a substitution), with the registry holding 0, 10 and 1,000
random 24-character secrets (each expanded to its encoded and escaped forms), and how long the
one-off rebuild of the pattern takes after the set changed.

Run ``python bench/redaction.py [--records N] [--sizes 0,10,1000]``; see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import time
from collections.abc import Sequence

from reconciler.secrets.redaction import RedactingFilter, SecretRegistry

LINE = 'HTTP Request: %s %s "HTTP/1.1 %d OK" workflow=%s run=%s'


def _record(secret: str | None) -> logging.LogRecord:
    url = "https://api.example.com/v1/items?page=2" + (f"&api_key={secret}" if secret else "")
    args = ("GET", url, 200, "motd", "0193f3a2-6c1e-7a55-b1f2-55e4d1c3a9b0")
    return logging.LogRecord("httpx", logging.INFO, __file__, 1, LINE, args, None)


def measure(size: int, records: int) -> tuple[float, float, float]:
    """(rebuild seconds, µs per clean record, µs per record holding a secret) for ``size``."""
    registry = SecretRegistry()
    values = [secrets.token_urlsafe(18) for _ in range(size)]
    for value in values:
        registry.add(value)
    started = time.perf_counter()
    registry.pattern()
    rebuild = time.perf_counter() - started
    check = RedactingFilter(registry)
    per: list[float] = []
    for secret in (None, values[-1] if values else None):
        batch = [_record(secret) for _ in range(records)]
        started = time.perf_counter()
        for record in batch:
            check.filter(record)
        per.append((time.perf_counter() - started) / records * 1e6)
        if secret is not None:
            assert secret not in batch[0].getMessage()
    return rebuild, per[0], per[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000, help="records per measurement")
    parser.add_argument("--sizes", default="0,10,1000", help="secrets known, comma-separated")
    args = parser.parse_args(argv)
    print(f"{'secrets':>8}  {'rebuild ms':>10}  {'µs/record (clean)':>18}  {'µs/record (hit)':>16}")
    print("-" * 60)
    for size in (int(s) for s in args.sizes.split(",")):
        rebuild, clean, hit = measure(size, args.records)
        shown_hit = f"{hit:.2f}" if size else "-"
        print(f"{size:>8}  {rebuild * 1000:>10.1f}  {clean:>18.2f}  {shown_hit:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
