"""create_many throughput of the identifier store: one JSON line.

    python benchmarks/bench_identifier_store.py [--url sqlite:///tmp/ids.sqlite] [--batches 5]

Each batch is 10,000 new handles with three values (URL, a product-model string, HS_ADMIN),
one transaction per batch, as a batch registration over the API would store them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from millnet.identifiers.core.store import MAX_BATCH, IdentifierStore
from millnet.protocols.handle import AdminRecord, HandleValue, encode_admin

ADMIN = HandleValue(100, "HS_ADMIN", encode_admin(AdminRecord(0x0FFF, "88.100.5/ADMIN", 300)))


def batch(number: int, size: int) -> list[tuple[str, list[HandleValue]]]:
    return [(f"88.100.5/B{number}-{i:06d}", [
        HandleValue(1, "URL", f"https://plant.example/items/{number}/{i}".encode()),
        HandleValue(2, "88.100.5/MODEL", b"PUMP-X200"),
        ADMIN,
    ]) for i in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'ids.sqlite'}"
        with IdentifierStore.open(url) as store:
            batches = [batch(n, MAX_BATCH) for n in range(args.batches)]
            rates = []
            for items in batches:
                started = time.perf_counter()
                store.create_many(items)
                rates.append(len(items) / (time.perf_counter() - started))
            started = time.perf_counter()
            for n in range(2000):
                store.get(f"88.100.5/B0-{n:06d}")
            gets = 2000 / (time.perf_counter() - started)
            print(json.dumps({
                "bench": "identifier_store", "backend": store.engine.dialect.name,
                "handles_per_batch": MAX_BATCH, "values_per_handle": 3,
                "create_many_handles_per_s": round(max(rates)),
                "create_many_handles_per_s_median": round(sorted(rates)[len(rates) // 2]),
                "get_per_s": round(gets),
            }))


if __name__ == "__main__":
    main()
