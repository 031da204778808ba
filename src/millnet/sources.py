"""The adapter host: the node's field sources by name, started, supervised and stopped (issue 11).

Every kind of adapter is one entry of :data:`KINDS` (its spec class and how to build it from a
spec and a :class:`FieldSink`); the ``[[sources]]`` tables of the node's TOML and the bodies of
``POST /api/v1/sources`` are validated against the union of those spec classes (:data:`AnySpec`,
discriminated on ``kind``). Sources come from three places, told apart by ``origin``:

* ``config``: the node's TOML (``[[sources]]``, and the ``[mqtt]`` section's JSON and Sparkplug
  sources); read-only through the API;
* ``api``: added through the API, stored in the registry (``field_sources``) and restarted on the
  next node start; a stored spec that no longer validates is listed as down, never deleted.

Each running adapter is one supervised task (``millnet.supervise``: a failure is logged, counted
on ``millnet_task_restarts_total`` and restarted with backoff) of the host's task group;
:meth:`SourceHost.remove` cancels that task and waits for it, so a source is added or removed
while the node runs. HTTP ingest (``millnet.api.routes.ingest.HttpIngest``) is listed
too, kind ``http``: it has no spec and nothing to run, it answers requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union

from prometheus_client import Counter
from pydantic import Field, TypeAdapter, ValidationError

from millnet.connectivity.adapter import Adapter, FieldSink, Health, HealthState, Writable
from millnet.connectivity.modbus import ModbusAdapter, ModbusSpec
from millnet.connectivity.opcua import OpcUaAdapter, OpcUaSpec
from millnet.connectivity.specs import SourceSpec
from millnet.errors import Conflict, InvalidInput, NotFound
from millnet.ingest.binder import DevicePath, Quotas, SeriesBinder
from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.registry import Registry
from millnet.registry.sources import SourceStore
from millnet.supervise import supervise

log = logging.getLogger("millnet.sources")

Origin = Literal["config", "api"]
#: Names of the sources the node runs from other sections; a ``[[sources]]`` entry or an API
#: source may not take them.
RESERVED_NAMES = frozenset({"mqtt-json", "sparkplug", "http"})


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What a factory may need besides the spec and the sink."""

    data_dir: Path


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of adapter: its spec class and how to build the adapter from a spec."""

    spec: type[SourceSpec]
    build: Callable[[Any, FieldSink, BuildContext], Adapter]


#: Adding a kind of adapter is one entry here.
KINDS: dict[str, Kind] = {
    "opcua": Kind(OpcUaSpec, lambda spec, sink, ctx: OpcUaAdapter(spec, sink, ctx.data_dir)),
    "modbus": Kind(ModbusSpec, lambda spec, sink, ctx: ModbusAdapter(spec, sink)),
}

if TYPE_CHECKING:
    AnySpec = SourceSpec
else:
    _specs = tuple(k.spec for k in KINDS.values())
    AnySpec = Annotated[Union[_specs] if len(_specs) > 1 else _specs[0],  # noqa: UP007
                        Field(discriminator="kind")]


def kind_of(spec: SourceSpec) -> str:
    """The ``kind`` literal a spec class adds to :class:`SourceSpec`."""
    return str(getattr(spec, "kind", ""))


def spec_adapter(kinds: Mapping[str, Kind]) -> TypeAdapter[SourceSpec]:
    """A validator of the specs of ``kinds`` (discriminated on ``kind``)."""
    specs = tuple(k.spec for k in kinds.values())
    union: Any = Union[specs] if len(specs) > 1 else specs[0]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])


def field_path(loc: tuple[int | str, ...], kinds: Mapping[str, Kind] = KINDS) -> str:
    """``('sources', 2, 'opcua', 'nodes', 3, 'point')`` -> ``sources[2].nodes[3].point``: the
    discriminator's tag pydantic puts in the path is left out."""
    out = ""
    prev: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (part in kinds and (prev is None or isinstance(prev, int))):
            out += f".{part}" if out else part
        prev = part
    return out


def error_path(err: Any, kinds: Mapping[str, Kind] = KINDS) -> str:
    """The field a pydantic error (one of ``ValidationError.errors()``) names, as written in
    TOML or JSON; a missing or unknown ``kind`` names ``kind``."""
    where = field_path(tuple(err["loc"]), kinds)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        where = f"{where}.kind" if where else "kind"
    return where


def parse_spec(data: object, kinds: Mapping[str, Kind] = KINDS) -> SourceSpec:
    """Validate one spec; InvalidInput naming the first bad field (``nodes[3].node_id``)."""
    try:
        return spec_adapter(kinds).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = error_path(err, kinds) or "body"
        raise InvalidInput(str(err["msg"]), where) from None


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One row of ``GET /api/v1/sources``."""

    name: str
    kind: str
    enabled: bool
    origin: Origin
    tenant_id: int
    health: Health
    spec: dict[str, Any] | None = None  # secrets masked


class Binders:
    """One :class:`SeriesBinder` per tenant (a source binds into its tenant's registry)."""

    def __init__(self, registry: Registry, quotas: Quotas) -> None:
        self._registry = registry
        self._quotas = quotas
        self._binders: dict[int, SeriesBinder] = {}
        self._lock = threading.Lock()

    def add(self, tenant_id: int, binder: SeriesBinder) -> None:
        self._binders[tenant_id] = binder

    def for_tenant(self, tenant_id: int) -> SeriesBinder:
        """The tenant's binder (blocking on first use: the tenant's name is read)."""
        found = self._binders.get(tenant_id)
        if found is not None:
            return found
        tenant = self._registry.get_tenant(tenant_id)
        with self._lock:
            return self._binders.setdefault(
                tenant_id, SeriesBinder(self._registry, tenant_id, tenant.name, self._quotas))


@dataclass
class _Entry:
    name: str
    kind: str
    origin: Origin
    tenant_id: int
    adapter: Adapter | None
    spec: SourceSpec | None = None
    enabled: bool = True
    runs: bool = True  # False: nothing to run (HTTP ingest answers requests)
    problem: str | None = None  # a stored spec that no longer validates
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def info(self, with_spec: bool = False) -> SourceInfo:
        if self.problem is not None:
            health = Health(HealthState.DOWN, self.problem)
        elif not self.enabled or self.adapter is None:
            health = Health(HealthState.STOPPED, "disabled")
        else:
            health = self.adapter.health()
            health = replace(health, counters=dict(health.counters))
        spec = self.spec.model_dump(mode="json") if with_spec and self.spec else None
        return SourceInfo(self.name, self.kind, self.enabled, self.origin, self.tenant_id,
                          health, spec)


class SourceHost:
    """The node's field adapters by name; an async context manager that runs them."""

    def __init__(
        self, pipeline: IngestPipeline, metrics: IngestMetrics, binders: Binders,
        restarts: Counter, *, default_tenant: int, data_dir: Path,
        store: SourceStore | None = None, config_file: str = "the node's configuration file",
        kinds: Mapping[str, Kind] = KINDS, first_backoff: float = 1.0,
    ) -> None:
        self._pipeline = pipeline
        self._metrics = metrics
        self._binders = binders
        self._restarts = restarts
        self._default_tenant = default_tenant
        self._context = BuildContext(data_dir)
        self._store = store
        self._config_file = config_file
        self.kinds = kinds
        self._first_backoff = first_backoff
        self._entries: dict[str, _Entry] = {}
        self._tg: asyncio.TaskGroup | None = None

    # -- running ---------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        for entry in self._entries.values():
            self._start(entry)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        tg, self._tg = self._tg, None
        for entry in self._entries.values():
            if entry.task is not None:
                entry.task.cancel()
        assert tg is not None
        try:
            # Every task is cancelled: the group only waits for them. The body's error is not
            # given to it, so it propagates as itself, not inside an ExceptionGroup.
            await tg.__aexit__(None, None, None)
        finally:
            for entry in self._entries.values():
                entry.task = None

    def _start(self, entry: _Entry) -> None:
        if (self._tg is None or entry.task is not None or entry.adapter is None
                or not entry.enabled or not entry.runs):
            return
        entry.task = self._tg.create_task(
            supervise(entry.name, entry.adapter.run, self._restarts,
                      first_backoff=self._first_backoff), name=f"source {entry.name}")

    # -- adding and removing ---------------------------------------------------------------------
    def attach(self, adapter: Adapter, *, tenant_id: int | None = None, origin: Origin = "config",
               runs: bool = True) -> None:
        """Host an adapter built elsewhere (the MQTT sources; HTTP ingest with ``runs=False``)."""
        self._claim(adapter.name)
        entry = _Entry(adapter.name, adapter.kind, origin,
                       tenant_id if tenant_id is not None else self._default_tenant, adapter,
                       runs=runs)
        self._entries[adapter.name] = entry
        self._start(entry)

    def add(self, spec: SourceSpec, *, tenant_id: int | None = None,
            origin: Origin = "config") -> SourceInfo:
        """Build the adapter of ``spec`` and start it (now, or when the host is entered).

        Blocking on the first source of a tenant (its binder reads the tenant's name)."""
        kind = kind_of(spec)
        if kind not in self.kinds:
            raise InvalidInput(f"unknown kind {kind!r}; one of {', '.join(self.kinds)}", "kind")
        self._claim(spec.name)
        tenant = tenant_id if tenant_id is not None else self._default_tenant
        sink = FieldSink(spec.name, self._pipeline, self._binders.for_tenant(tenant),
                         self._metrics)
        adapter = self.kinds[kind].build(spec, sink, self._context)
        entry = _Entry(spec.name, kind, origin, tenant, adapter, spec, enabled=spec.enabled)
        self._entries[spec.name] = entry
        self._start(entry)
        log.info("source %s (%s, %s) added", spec.name, kind, origin)
        return entry.info()

    def _claim(self, name: str) -> None:
        if name in self._entries:
            raise Conflict(f"source {name!r} exists")

    async def remove(self, name: str) -> None:
        """Stop the source (cancel its task and wait for it) and forget it."""
        entry = self._entries.pop(name, None)
        if entry is None:
            raise NotFound(f"source {name!r} not found")
        task, entry.task = entry.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("source %s removed", name)

    # -- the API's operations: stored sources ------------------------------------------------------
    async def restore(self) -> None:
        """Add the sources stored through the API (at node start)."""
        if self._store is None:
            return
        for stored in await asyncio.to_thread(self._store.list_sources):
            if stored.name in self._entries:
                log.error("stored source %s not started: the name is taken by a source of %s",
                          stored.name, self._config_file)
                continue
            try:
                spec = parse_spec(json.loads(stored.spec_json), self.kinds)
            except (InvalidInput, ValueError) as exc:
                log.error("stored source %s not started: %s", stored.name, exc)
                self._entries[stored.name] = _Entry(
                    stored.name, stored.kind, "api", stored.tenant_id, None,
                    problem=f"stored spec no longer valid: {exc}")
                continue
            await self._add_in_loop(spec, stored.tenant_id)

    async def create(self, spec: SourceSpec, tenant_id: int,
                     created_by: int | None) -> SourceInfo:
        """Store ``spec`` (Conflict on a taken name) and start it."""
        if spec.name in RESERVED_NAMES or spec.name in self._entries:
            raise Conflict(f"source {spec.name!r} exists")
        if self._store is None:
            raise Conflict("this node does not store sources")
        # SecretStr fields dump masked: keep their values (the registry is the node's own).
        text = json.dumps(_with_secrets(spec))
        await asyncio.to_thread(self._store.add_source, spec.name, kind_of(spec),
                                text, tenant_id, created_by)
        try:
            return await self._add_in_loop(spec, tenant_id)
        except BaseException:
            await asyncio.to_thread(self._store.remove_source, spec.name)
            raise

    async def _add_in_loop(self, spec: SourceSpec, tenant_id: int) -> SourceInfo:
        """``add`` from the event loop: the tenant's binder is made in a thread first (it reads
        the registry), the task is created here (a task group is not thread-safe: a task
        created from a worker thread did not wake the loop)."""
        await asyncio.to_thread(self._binders.for_tenant, tenant_id)
        return self.add(spec, tenant_id=tenant_id, origin="api")

    async def delete(self, name: str) -> None:
        """Stop and forget an API source; Conflict for one of the configuration file."""
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"source {name!r} not found")
        if entry.origin == "config":
            raise Conflict(f"source {name!r} is defined in {self._config_file}: remove it there")
        await self.remove(name)
        if self._store is not None:
            await asyncio.to_thread(self._store.remove_source, name)

    # -- what the API and the command service see -------------------------------------------
    def list(self) -> list[SourceInfo]:
        return [e.info() for e in sorted(self._entries.values(), key=lambda e: e.name)]

    def get(self, name: str) -> SourceInfo:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"source {name!r} not found")
        return entry.info(with_spec=True)

    def find_writer(self, device: DevicePath, point: str) -> Writable | None:
        """The running adapter that can write ``device``/``point``, if any."""
        for entry in self._entries.values():
            adapter = entry.adapter
            if (entry.task is not None and isinstance(adapter, Writable)
                    and adapter.writable(device, point)):
                return adapter
        return None


def _with_secrets(spec: SourceSpec) -> Any:
    """The spec as JSON data with secret values in clear (for the registry, never a log)."""
    from pydantic import SecretStr

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: reveal(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [reveal(v) for v in value]
        return value

    return json.loads(json.dumps(reveal(spec.model_dump(mode="python")), default=str))

