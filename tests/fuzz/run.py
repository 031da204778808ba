"""Coverage-guided fuzzing of millnet's network inputs with atheris (libFuzzer).

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python -m tests.fuzz.run udp -max_total_time=300 [corpus_dir]
    .venv/bin/python -m tests.fuzz.run tcp|rest_json ...

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

    if len(sys.argv) < 2 or sys.argv[1] not in ("udp", "tcp", "rest_json"):
        sys.exit("usage: python -m tests.fuzz.run udp|tcp|rest_json [libFuzzer options]")
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["millnet"]):  # before anything imports millnet
        from tests.fuzz import targets
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and name != "rest_json" and not Path(corpus[0]).is_file():
        _seed(Path(corpus[0]))
    one: Callable[[bytes], object]
    if name == "rest_json":
        one = targets.rest_json
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


if __name__ == "__main__":
    main()
