"""Normal resolutions before, during and after a deep-prefix UDP flood: one JSON line.

    .venv/bin/python benchmarks/bench_prefix_flood.py [--seconds 10] [--flood-kib 58]
        [--probe-rate 100] [--handles 10000] [--workers 1]

The same as ``millnet bench flood --json`` (:mod:`millnet.bench.flood`): a real ``millnet id
serve``, another process sending 317-octet requests for handles under 255-character prefixes
at ``--flood-kib`` KiB/s and never reading the answers, and this process timing normal
resolutions at ``--probe-rate`` per second. Exits with status 1 when a normal resolution is
lost (unanswered after 1 s) or fails.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from millnet.bench.flood import run_flood_bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each phase")
    parser.add_argument("--flood-kib", type=float, default=58.0)
    parser.add_argument("--probe-rate", type=float, default=100.0)
    parser.add_argument("--handles", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    result = run_flood_bench(handles=args.handles, seconds=args.seconds,
                             flood_kib=args.flood_kib, probe_rate=args.probe_rate,
                             workers=args.workers, console=Console(stderr=True))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
