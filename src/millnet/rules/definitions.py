"""The rule model: frozen dataclasses the engine consumes, and their one parser.

A rule is flat in every serialized form (TOML, YAML, JSON): the common keys (``name``,
``kind``, ``priority``, ``message``, ``applies_to``...) beside the keys of its kind
(``point``, ``above``...). :func:`parse_rule` checks all of it and names the field of every
problem (``rules[2].above``); :meth:`Rule.to_dict` writes the canonical form back, which parses
to an equal rule. docs/rules.md describes every key.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from millnet.errors import InvalidInput
from millnet.model.alarms import Priority
from millnet.rules.expr import Expression
from millnet.rules.fields import Fields, check_rule_name, show

__all__ = ["MESSAGE_NAMES", "AnomalyCondition", "Condition", "ExpressionCondition",
           "FrozenParams", "RateOfChange", "Rule", "RuleKind", "Scope", "Stale",
           "StateCondition", "Threshold", "check_template", "parse_rule", "render_message"]


class RuleKind(StrEnum):
    THRESHOLD = "threshold"
    RATE = "rate"
    STALE = "stale"
    STATE = "state"
    EXPRESSION = "expression"
    ANOMALY = "anomaly"


DETECTORS = ("robust", "pca", "river")


@dataclass(frozen=True)
class Scope:
    """Which devices a rule covers: every one whose asset type, place in the ISA-95 tree and
    name match all the parts given (at least one is)."""

    asset_type: str | None = None
    branch: str | None = None  # an asset path prefix, whole components: "Acme/Suzhou"
    devices: tuple[str, ...] = ()  # fnmatch globs on device names (case-sensitive)

    def matches(self, *, asset_type: str | None, path: str, device: str) -> bool:
        """Does a device (its asset type, its path as the asset API shows it, its name) fall
        in this scope?"""
        if self.asset_type is not None and asset_type != self.asset_type:
            return False
        if self.branch is not None and path != self.branch and \
                not path.startswith(self.branch + "/"):
            return False
        return not self.devices or any(fnmatch.fnmatchcase(device, glob)
                                       for glob in self.devices)


@dataclass(frozen=True)
class Threshold:
    point: str
    above: float | None
    below: float | None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0


@dataclass(frozen=True)
class RateOfChange:
    """Active when the change between consecutive samples, per second, rises faster than
    ``max_rise_per_s`` or falls faster than ``max_fall_per_s`` (both positive)."""

    point: str
    max_rise_per_s: float | None
    max_fall_per_s: float | None
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0


@dataclass(frozen=True)
class Stale:
    point: str  # "*": any point of the device
    timeout_s: float


@dataclass(frozen=True)
class StateCondition:
    point: str
    values: tuple[float, ...] = ()  # numeric and boolean points (true/false given as 1/0)
    texts: tuple[str, ...] = ()  # string points
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0


@dataclass(frozen=True)
class ExpressionCondition:
    expression: Expression
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0


class FrozenParams(Mapping[str, float]):
    """A read-only, hashable mapping (detector parameters)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float] | None = None) -> None:
        self._items = dict(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> float:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenParams({self._items!r})"


@dataclass(frozen=True)
class AnomalyCondition:
    detector: str  # one of DETECTORS
    points: tuple[str, ...]
    train_samples: int = 500
    params: Mapping[str, float] = field(default_factory=FrozenParams)


Condition = (Threshold | RateOfChange | Stale | StateCondition | ExpressionCondition
             | AnomalyCondition)


@dataclass(frozen=True)
class Rule:
    name: str
    kind: RuleKind
    condition: Condition
    scope: Scope
    priority: Priority
    message: str
    description: str = ""
    notify: tuple[str, ...] = ()
    suppress_when: Expression | None = None
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form: parses back (:func:`parse_rule`) to an equal rule."""
        scope: dict[str, Any] = {}
        if self.scope.asset_type is not None:
            scope["asset_type"] = self.scope.asset_type
        if self.scope.branch is not None:
            scope["branch"] = self.scope.branch
        if self.scope.devices:
            scope["devices"] = list(self.scope.devices)
        data: dict[str, Any] = {
            "name": self.name, "kind": self.kind.value, "priority": self.priority.label,
            "description": self.description, "message": self.message,
            "notify": list(self.notify), "enabled": self.enabled, "applies_to": scope}
        if self.suppress_when is not None:
            data["suppress_when"] = self.suppress_when.text
        data.update(_condition_dict(self.condition))
        return data


def _condition_dict(condition: Condition) -> dict[str, Any]:
    out: dict[str, Any]
    delays: dict[str, Any] = {}
    if not isinstance(condition, Stale | AnomalyCondition):
        delays = {"on_delay": condition.on_delay_s, "off_delay": condition.off_delay_s}
    match condition:
        case Threshold():
            out = {"point": condition.point, "above": condition.above,
                   "below": condition.below, "deadband": condition.deadband}
        case RateOfChange():
            out = {"point": condition.point, "max_rise_per_s": condition.max_rise_per_s,
                   "max_fall_per_s": condition.max_fall_per_s}
        case Stale():
            out = {"point": condition.point, "timeout": condition.timeout_s}
        case StateCondition():
            out = {"point": condition.point}
            if condition.values:
                out["values"] = list(condition.values)
            if condition.texts:
                out["texts"] = list(condition.texts)
        case ExpressionCondition():
            out = {"expression": condition.expression.text}
        case AnomalyCondition():
            out = {"detector": condition.detector, "points": list(condition.points),
                   "train_samples": condition.train_samples, "params": dict(condition.params)}
    return {key: value for key, value in {**out, **delays}.items() if value is not None}


# Message templates.

MESSAGE_NAMES = frozenset({"device", "point", "value", "limit", "rule", "asset_path"})
_NUMERIC_NAMES = frozenset({"value", "limit"})
# The standard format mini-language, width and precision bounded (a width of 10**9 would
# make one message a gigabyte).
_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>[0-9]{0,3})[,_]?"
                   r"(?:\.(?P<precision>[0-9]{1,2}))?[bcdeEfFgGnosxX%]?")
MESSAGE_MAX = 500
DEFAULT_MESSAGES = {
    RuleKind.THRESHOLD: "{device}: {point} = {value:.6g} outside the limit {limit:.6g}",
    RuleKind.RATE: "{device}: {point} changes by {value:.6g}/s (limit {limit:.6g}/s)",
    RuleKind.STALE: "{device}: no update of {point} for {limit:g} s",
    RuleKind.STATE: "{device}: {point} = {value}",
    RuleKind.EXPRESSION: "{device}: {rule}",
    RuleKind.ANOMALY: "{device}: anomaly in {point} (score {value:.3g})",
}


def check_template(template: object, field: str) -> str:
    """A message template: literal text and ``{name}`` or ``{name:spec}`` with a name of
    :data:`MESSAGE_NAMES`; no attribute or index access, no conversions, no nested fields."""
    if not isinstance(template, str):
        raise InvalidInput(f"must be a string (got {show(template)})", field)
    if not template.strip() or len(template) > MESSAGE_MAX:
        raise InvalidInput(f"must be 1 to {MESSAGE_MAX} characters", field)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidInput(f"not a valid template: {exc}", field) from None
    names = ", ".join(sorted(MESSAGE_NAMES))
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if any(char in name for char in ".["):
            raise InvalidInput(f"no attribute or index access in {{{name}}}", field)
        if name not in MESSAGE_NAMES:
            raise InvalidInput(f"unknown name {{{name}}} in the template; one of {names}", field)
        if conversion is not None:
            raise InvalidInput(f"no conversions (!{conversion}) in {{{name}}}", field)
        if spec and (_SPEC.fullmatch(spec) is None or not _formats(name, spec)):
            raise InvalidInput(f"invalid format {spec!r} for {{{name}}}", field)
    return template


def _formats(name: str, spec: str) -> bool:
    sample: object = 1.5 if name in _NUMERIC_NAMES else "x"
    try:
        format(sample, spec)
    except ValueError:
        return False
    return True


def render_message(template: str, **values: object) -> str:
    """Fill a template checked by :func:`check_template`. Never raises: a name not given (or
    None) is written as "-", a value its format does not fit (a text under ``:.1f``) plainly."""
    out: list[str] = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if value is None:
            out.append("-")
            continue
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError):
            out.append(str(value))
    return "".join(out)


# Parsing.

COMMON_KEYS = ("name", "kind", "priority", "description", "message", "notify", "enabled",
               "suppress_when", "applies_to")
_DELAYS = ("on_delay", "off_delay")
KIND_KEYS: dict[RuleKind, tuple[str, ...]] = {
    RuleKind.THRESHOLD: ("point", "above", "below", "deadband", *_DELAYS),
    RuleKind.RATE: ("point", "max_rise_per_s", "max_fall_per_s", *_DELAYS),
    RuleKind.STALE: ("point", "timeout"),
    RuleKind.STATE: ("point", "values", "texts", *_DELAYS),
    RuleKind.EXPRESSION: ("expression", *_DELAYS),
    RuleKind.ANOMALY: ("detector", "points", "train_samples", "params"),
}
SCOPE_KEYS = ("asset_type", "branch", "devices")


def parse_rule(data: Mapping[str, Any], field: str = "") -> Rule:
    """Check ``data`` (the flat form) and build a :class:`Rule`; InvalidInput naming the field
    (``f"{field}.above"``, or ``"above"`` when ``field`` is empty) otherwise."""
    fields = Fields(data, field)
    name = check_rule_name(fields.required("name"), fields.name("name"))
    kind_text = fields.required("kind")
    try:
        kind = RuleKind(kind_text)
    except (ValueError, TypeError):
        known = ", ".join(k.value for k in RuleKind)
        raise InvalidInput(f"must be one of {known} (got {show(kind_text)})",
                           fields.name("kind")) from None
    fields.allow(COMMON_KEYS + KIND_KEYS[kind], other_kinds=_other_kind_keys(kind))
    condition = _CONDITIONS[kind](fields)
    priority = Priority.MEDIUM
    if (given := fields.get("priority")) is not None:
        try:
            priority = Priority.parse(str(given) if isinstance(given, int) else given)
        except (ValueError, AttributeError):
            raise InvalidInput(f"must be one of critical, high, medium, low (got "
                               f"{show(given)})", fields.name("priority")) from None
    message = fields.get("message")
    message = DEFAULT_MESSAGES[kind] if message is None else message
    return Rule(
        name=name, kind=kind, condition=condition, scope=_scope(fields),
        priority=priority, message=check_template(message, fields.name("message")),
        description=fields.text("description", 2000), notify=fields.names("notify", 32),
        suppress_when=fields.expression("suppress_when", required=False),
        enabled=fields.boolean("enabled", True))


def _other_kind_keys(kind: RuleKind) -> dict[str, str]:
    """Keys of other kinds, to say "not a key of a threshold rule" instead of "unknown"."""
    return {key: other.value for other, keys in KIND_KEYS.items() if other != kind
            for key in keys if key not in KIND_KEYS[kind]}


def _scope(fields: Fields) -> Scope:
    scope = fields.sub("applies_to", SCOPE_KEYS)
    asset_type = scope.get("asset_type")
    if asset_type is not None:
        asset_type = check_rule_name(asset_type, scope.name("asset_type"))
    branch = scope.get("branch")
    if branch is not None:
        branch = scope.branch("branch")
    devices = scope.globs("devices", 100)
    if asset_type is None and branch is None and not devices:
        raise InvalidInput("give at least one of asset_type, branch, devices",
                           fields.name("applies_to"))
    return Scope(asset_type, branch, devices)


def _threshold(fields: Fields) -> Threshold:
    point = fields.point("point")
    above, below = fields.number("above"), fields.number("below")
    if above is None and below is None:
        raise InvalidInput("give above, below or both", fields.name("above"))
    deadband = fields.number("deadband") or 0.0
    if deadband < 0:
        raise InvalidInput(f"must not be negative (got {deadband:g})", fields.name("deadband"))
    if above is not None and below is not None:
        if below >= above:
            raise InvalidInput(f"must be below above ({above:g}), got {below:g}",
                               fields.name("below"))
        if deadband >= above - below:
            raise InvalidInput(f"must be smaller than above - below ({above - below:g})",
                               fields.name("deadband"))
    return Threshold(point, above, below, deadband, *fields.delays())


def _rate(fields: Fields) -> RateOfChange:
    point = fields.point("point")
    rise, fall = fields.number("max_rise_per_s"), fields.number("max_fall_per_s")
    if rise is None and fall is None:
        raise InvalidInput("give max_rise_per_s, max_fall_per_s or both",
                           fields.name("max_rise_per_s"))
    for key, value in (("max_rise_per_s", rise), ("max_fall_per_s", fall)):
        if value is not None and value <= 0:
            raise InvalidInput(f"must be positive (got {value:g})", fields.name(key))
    return RateOfChange(point, rise, fall, *fields.delays())


def _stale(fields: Fields) -> Stale:
    point = "*" if fields.get("point") == "*" else fields.point("point")
    timeout = fields.duration("timeout", required=True)
    if timeout <= 0:
        raise InvalidInput("must be longer than 0 s", fields.name("timeout"))
    return Stale(point, timeout)


def _state(fields: Fields) -> StateCondition:
    point = fields.point("point")
    values, texts = fields.state_values("values"), fields.names("texts", 64, free_text=True)
    if bool(values) == bool(texts):
        raise InvalidInput("give either values (numbers, true, false) or texts",
                           fields.name("values"))
    return StateCondition(point, values, texts, *fields.delays())


def _expression(fields: Fields) -> ExpressionCondition:
    expression = fields.expression("expression", required=True)
    assert expression is not None
    return ExpressionCondition(expression, *fields.delays())


def _anomaly(fields: Fields) -> AnomalyCondition:
    detector = fields.required("detector")
    if detector not in DETECTORS:
        raise InvalidInput(f"must be one of {', '.join(DETECTORS)} (got {show(detector)})",
                           fields.name("detector"))
    points = fields.points("points", 64)
    train = fields.integer("train_samples", 500, 10, 1_000_000)
    params = FrozenParams(fields.params("params"))
    # Built once here so that a wrong parameter is refused with the rule, not at run time.
    from millnet.analytics.anomaly.base import make_detector

    try:
        make_detector(detector, len(points), train_samples=train, **dict(params))
    except InvalidInput as exc:
        raise InvalidInput(str(exc), fields.name("params")) from None
    return AnomalyCondition(detector, points, train, params)


_CONDITIONS: dict[RuleKind, Callable[[Fields], Condition]] = {
    RuleKind.THRESHOLD: _threshold, RuleKind.RATE: _rate, RuleKind.STALE: _stale,
    RuleKind.STATE: _state, RuleKind.EXPRESSION: _expression, RuleKind.ANOMALY: _anomaly}
