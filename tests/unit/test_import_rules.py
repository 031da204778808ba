"""The dependency rule of the design (shared DESIGN.md, docs/design.md), held on the import graph.

Every ``import`` and ``from ... import`` in src/millnet is read with ``ast`` (also those inside
functions and under TYPE_CHECKING: a lazy import is still a dependency). The domain packages sit
in layers and import only from lower layers and from themselves; packages of one layer do not
import each other (registry and identifiers share the database through ``db``, not through
each other). Only the composition modules above the domain see everything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MILLNET = SRC / "millnet"

#: Lowest first. ``errors`` and ``model`` are leaves; ``protocols`` are sans-IO codecs over
#: them; ``db`` is the database every store shares (engine, migrations, metadata).
#: Issue 12: ``alarms`` and ``notify`` meet only through ``model.alarms`` (ConditionChange,
#: AlarmNotice), never each other; ``analytics`` (anomaly detectors) stands on ``errors``
#: alone so that ``rules`` can use it; ``kpi`` reads the registry's points; ``kpi`` and
#: ``rules`` consume the ingest stream (``ingest.tap``) beside ``connectivity``, which feeds it.
#: Issue 13: ``security`` (events and detectors) stands on ``model.security``; ``federation``
#: reads the registry's devices for its inventory and knows nothing of the stores above it.
#: ``aio`` (asyncio without lost cancellations) and ``children`` (child processes that die with
#: their parent) are leaves of the standard library beside ``errors``.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "aio", "children"}),
    frozenset({"model"}),
    frozenset({"protocols"}),
    frozenset({"db"}),
    frozenset({"registry", "identifiers", "telemetry", "alarms", "notify", "analytics", "probe",
               "security", "trace"}),
    frozenset({"ingest", "federation"}),
    frozenset({"connectivity", "rules", "kpi"}),
    # Issue 15: shares between enterprises read a device's values, alarms and KPI states and
    # travel through the federation; a park's summaries come from the KPI tracker.
    frozenset({"collab", "park", "orders"}),
)
#: Above the domain: these may import anything (and nothing in LAYERS imports them).
COMPOSITION = frozenset({
    "__init__", "__main__", "api", "bench", "cli", "cli_alarms", "cli_commands", "cli_eval",
    "cli_federation", "cli_id", "cli_modbus", "cli_opcua", "cli_probe", "cli_rules",
    "cli_security", "cli_situation", "commands", "config", "demo", "demo_federation",
    "demo_federation_events", "demo_field", "demo_ids", "demo_insight", "files", "heap", "idnode",
    "idoptions", "insight", "monitoring", "node", "sensor_report", "services", "serving", "sim",
    "sources", "supervise", "web", "partners", "cli_share", "cli_park",
    "ordering", "cli_orders", "demo_orders", "tracing", "cli_trace", "console",
})
#: Imports that break a rule, each with the reason it is tolerated: (importer, imported) as
#: module names. Keep this short; an entry is a debt.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> tuple[str, tuple[str, ...]]:
    """The dotted name of a source file and the package its relative imports start from."""
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), parts[:-1]
    return ".".join(parts), parts[:-1]


def _imports(path: Path) -> Iterator[str]:
    """The millnet modules (or names of a package) that the file at ``path`` imports."""
    _, package = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join((*anchor, base) if base else anchor)
            if base == "millnet":  # from millnet import errors
                yield from (f"millnet.{alias.name}" for alias in node.names)
            else:
                yield base


def _area(module: str) -> str:
    """The top-level package or module of millnet that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(area: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if area in layer), None)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(MILLNET.rglob("*.py")):
        name, _ = _module_name(path)
        graph[name] = {m for m in _imports(path) if m == "millnet" or m.startswith("millnet.")}
    return graph


def _violation(importer: str, imported: str) -> str | None:
    source, target = _area(importer), _area(imported)
    layer = _layer(source)
    if layer is None or source == target:
        return None
    target_layer = _layer(target)
    if target_layer is None:
        return f"{source} is in the domain and may not import {target} (composition)"
    if target_layer == layer:
        return f"{source} and {target} are peers: share code through a lower layer"
    if target_layer > layer:
        return f"{source} may import only downward, {target} is above it"
    return None


def test_every_package_has_a_place() -> None:
    """A new package is placed in a layer or among the composition modules on purpose."""
    areas = {_area(name) for name in _graph()}
    placed = COMPOSITION.union(*LAYERS)
    assert areas <= placed, f"place {sorted(areas - placed)} in LAYERS or COMPOSITION"


def test_the_parser_sees_imports_of_every_form() -> None:
    graph = _graph()
    assert "millnet.db.schema" in graph["millnet.registry.schema"]  # absolute
    assert "millnet.identifiers.core.schema" in graph["millnet.identifiers.core.values"]  # relative
    assert "millnet.protocols.handle.wire" in graph["millnet.protocols.handle.codec"]


def test_domain_packages_import_only_downward() -> None:
    found = [f"{importer} imports {imported}: {why}"
             for importer, imports in sorted(_graph().items()) for imported in sorted(imports)
             if (why := _violation(importer, imported))
             and (importer, imported) not in EXCEPTIONS]
    assert not found, "\n".join(found)


def test_registry_and_identifiers_do_not_import_each_other() -> None:
    """Stated on its own because it was broken (issue 10): both use millnet.db instead."""
    graph = _graph()
    for importer, imports in graph.items():
        for imported in imports:
            pair = {_area(importer), _area(imported)}
            assert pair != {"registry", "identifiers"}, f"{importer} imports {imported}"


def test_migrations_import_nothing_from_millnet() -> None:
    """A migration carries what it needs (frozen copies), so that a change of live code cannot
    change what an old migration does to a database."""
    versions = MILLNET / "db" / "migrations" / "versions"
    scripts = sorted(versions.glob("*.py"))
    assert scripts
    found = {path.name: sorted(m for m in _imports(path) if m.split(".")[0] == "millnet")
             for path in scripts}
    assert not {name: mods for name, mods in found.items() if mods}


def test_exceptions_are_still_needed() -> None:
    graph = _graph()
    stale = [pair for pair in EXCEPTIONS if pair[1] not in graph.get(pair[0], set())]
    assert not stale, f"remove {stale} from EXCEPTIONS"


#: The identifier service's own layers (issue 10, scope 4), lowest first: the store and
#: service beside the native protocol's wire plumbing; resolution across the hierarchy over
#: both; the two ways of serving (HTTP and native) over those; replication over everything.
IDENTIFIER_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core", "wire"}),
    frozenset({"hierarchy"}),
    frozenset({"http", "native"}),
    frozenset({"replication"}),
)


def _identifier_part(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "identifiers" else None


def test_identifier_subpackages_import_only_downward() -> None:
    graph = _graph()
    parts = {p for name in graph if (p := _identifier_part(name))}
    placed = frozenset().union(*IDENTIFIER_LAYERS)
    assert parts <= placed, f"place {sorted(parts - placed)} in IDENTIFIER_LAYERS"

    def layer(part: str) -> int:
        return next(i for i, group in enumerate(IDENTIFIER_LAYERS) if part in group)

    found = []
    for importer, imports in sorted(graph.items()):
        source = _identifier_part(importer)
        for imported in sorted(imports):
            target = _identifier_part(imported)
            if importer == "millnet.identifiers" and target not in (None, "core"):
                found.append(f"the package's face re-exports {imported}: only core")
            if source is None or target is None or source == target:
                continue
            if layer(target) >= layer(source):
                found.append(f"{importer} imports {imported}: "
                             f"{'peers' if layer(target) == layer(source) else 'upward'}")
    assert not found, "\n".join(found)


def test_nothing_waits_with_asyncio_wait_for() -> None:
    """Python 3.11's ``asyncio.wait_for`` can swallow the cancellation of the waiting task
    (CPython gh-86296): a loop stopped by a TaskGroup then never stops (the demo hung on Ctrl-C
    this way, inside aiomqtt). ``asyncio.timeout`` has no such flaw; see millnet.aio."""
    found = []
    for path in sorted(MILLNET.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr == "wait_for"
                    and isinstance(node.value, ast.Name) and node.value.id == "asyncio"):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, f"use asyncio.timeout instead of asyncio.wait_for: {found}"
