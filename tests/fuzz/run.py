"""Coverage-guided fuzzing of millnet's network inputs with atheris (libFuzzer).

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python -m tests.fuzz.run udp -max_total_time=300 [corpus_dir]
    .venv/bin/python -m tests.fuzz.run tcp|rest_json|rest_put ...

Targets and their invariants: :mod:`tests.fuzz.targets`. A corpus directory that is empty is
first seeded with requests of every kind generated from the codec's hypothesis strategies
(and the captured CAICT SDK exchange). A crash leaves ``crash-*`` with the input; replay it
with ``python -m tests.fuzz.run udp crash-...``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def main() -> None:
    import atheris  # the optional 'fuzz' extra

    if len(sys.argv) < 2 or sys.argv[1] not in ("udp", "tcp", "rest_json", "rest_put"):
        sys.exit("usage: python -m tests.fuzz.run udp|tcp|rest_json|rest_put [libFuzzer "
                 "options]")
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["millnet"]):  # before anything imports millnet
        from tests.fuzz import targets
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and not Path(corpus[0]).is_file():
        if name.startswith("rest_"):  # rest_put: a first byte picks the request
            _seed_json(Path(corpus[0]), b"\0" if name == "rest_put" else b"")
        else:
            _seed(Path(corpus[0]))
    one: Callable[[bytes], object]
    if name == "rest_json":
        one = targets.rest_json
    elif name == "rest_put":
        one = targets.RestTarget().put
    else:
        node = targets.NativeTarget()
        one = node.udp if name == "udp" else node.tcp
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


def _seed(directory: Path, count: int = 400) -> None:
    """Encoded requests of every kind into an empty ``directory``."""
    import json
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning

    from millnet.protocols import handle as h
    from tests.unit.handle_strategies import messages, requests

    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    seeds: list[bytes] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        strategy = messages(requests)
        seeds += [h.encode_message(strategy.example()) for _ in range(count)]
    capture = Path(__file__).parents[1] / "data" / "caict-id-sdk-2.0.3.jsonl"
    for line in capture.read_text().splitlines():
        record = json.loads(line)
        if record.get("dir") == "c2s":
            seeds.append(bytes.fromhex(record["hex"]))
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:04d}").write_bytes(seed)


def _seed_json(directory: Path, head: bytes = b"") -> None:
    """PUT bodies in Handle.Net JSON for values of every kind the API writes specially."""
    import msgspec

    from millnet.identifiers.http.rest_json import value_json
    from millnet.protocols import handle as h

    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    site = h.SiteInfo(servers=(h.ServerRecord(1, h.address_octets("127.0.0.1"), interfaces=(
        h.ServiceInterface(),)),), attributes=(("desc", "x"),))
    kinds = [
        h.HandleValue(1, "URL", b"https://plant.example/p/1", ttl=3600),
        h.HandleValue(2, "EMAIL", b"ops@plant.example", permissions=0x0E),
        h.HandleValue(3, "MN_DATA", b'{"model":"P-200"}'),
        h.HandleValue(4, "BINARY", bytes(range(40))),
        h.HandleValue(100, "HS_ADMIN", h.encode_admin(h.AdminRecord(0x0FF2, "88.100.5/ADMIN",
                                                                      300))),
        h.HandleValue(200, "HS_VLIST", h.encode_vlist((h.ValueReference("88.100.5/A", 300),))),
        h.HandleValue(5, "HS_SITE", h.encode_site(site)),
        h.HandleValue(300, "HS_SECKEY", b"secret", permissions=0x0C),
        h.HandleValue(6, "HS_SERV", h.encode_serv("88.100/SERV.A")),
        h.HandleValue(7, "REF", b"x", references=(h.ValueReference("88.100.5/T", 1),)),
    ]
    encode = msgspec.json.encode
    bodies = [encode([value_json(v)]) for v in kinds]
    bodies.append(encode({"handle": "88.100.5/X", "values": [value_json(v) for v in kinds]}))
    for i, body in enumerate(bodies):
        (directory / f"seed-{i:04d}").write_bytes(head + body)


if __name__ == "__main__":
    main()
