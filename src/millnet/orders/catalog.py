"""Configurable products: options with choices, compatibility rules, lead times and a routing,
and the check of a customer's configuration against them.

A product is declared (a file of ``[[products]]``, see :mod:`millnet.orders.files`, or the API)
as data, never code:

* ``options``: each has ``choices``; a choice may carry a ``lead_time`` (the time its parts
  take to arrive, e.g. ``"2d"``); an option without a ``default`` must be chosen.
* ``rules``: a small declarative constraint set, each with an ``id`` and a ``message``:
  ``requires`` (``when`` these choices are made, each option of ``then`` must be one of its
  listed choices), ``excludes`` (``when`` these are made, no choice listed in ``then`` may be),
  ``allowed`` (the choices of ``options`` together must be one of ``combinations``).
* ``routing``: the operations in order, each on a line of the ISA-95 tree (its path below the
  tenant, ``Site/Area/Line``) with a cycle time per unit; an operation with ``when`` is only in
  the routing of configurations that match it.

:func:`check_selection` answers the full configuration (defaults filled in) or raises
:class:`ConfigurationRefused` naming the option or the rule broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from millnet.errors import InvalidInput

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_LEAD_TIME_S = 365 * 86400.0


def duration_s(text: object) -> float:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"2d"`` (or a number of seconds) in seconds."""
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise ValueError("a duration is a number of seconds or a string like '4h'")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        found = _DURATION.match(text)
        if found is None:
            raise ValueError(f"{text!r} is not a duration (a number and s, m, h or d: '4h')")
        seconds = float(found.group(1)) * _UNIT_S[found.group(2)]
    if not 0 <= seconds <= MAX_LEAD_TIME_S:
        raise ValueError("a duration is from 0 to 365 days")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Seconds; given as a number of seconds or a string like "2d".
Duration = Annotated[float, BeforeValidator(duration_s, json_schema_input_type=float | str),
                     Field(description="seconds, or a number with s, m, h or d: '2d'")]


class Choice(_Model):
    id: Name
    label: str | None = Field(default=None, max_length=200)
    lead_time: Duration = 0.0


class Option(_Model):
    id: Name
    label: str | None = Field(default=None, max_length=200)
    choices: list[Choice] = Field(min_length=1, max_length=100)
    default: Name | None = None

    @model_validator(mode="after")
    def _check(self) -> Option:
        ids = [c.id for c in self.choices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"option {self.id}: choices repeat an id")
        if self.default is not None and self.default not in ids:
            raise ValueError(f"option {self.id}: default {self.default!r} is not a choice")
        return self

    def choice(self, choice_id: str) -> Choice | None:
        return next((c for c in self.choices if c.id == choice_id), None)


Selection = dict[str, str]


def _listed(value: Any) -> Any:
    """``{option: choice}`` or ``{option: [choices]}`` -> ``{option: [choices]}``."""
    if isinstance(value, dict):
        return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
    return value


class Rule(_Model):
    id: Name
    kind: Literal["requires", "excludes", "allowed"]
    message: str = Field(min_length=1, max_length=500)
    when: dict[Name, list[Name]] = Field(default_factory=dict)
    then: dict[Name, list[Name]] = Field(default_factory=dict)
    options: list[Name] = Field(default_factory=list)
    combinations: list[list[Name]] = Field(default_factory=list)

    @field_validator("when", "then", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _listed(value)

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if self.kind == "allowed":
            if not self.options or not self.combinations or self.when or self.then:
                raise ValueError(f"rule {self.id}: 'allowed' takes options and combinations")
            if any(len(c) != len(self.options) for c in self.combinations):
                raise ValueError(f"rule {self.id}: each combination names one choice per "
                                 "option")
        elif not self.then or self.options or self.combinations:
            raise ValueError(f"rule {self.id}: '{self.kind}' takes when and then")
        return self

    def broken_by(self, selection: Selection) -> bool:
        if self.kind == "allowed":
            return [selection.get(o) for o in self.options] not in self.combinations
        if not all(selection.get(o) in choices for o, choices in self.when.items()):
            return False
        if self.kind == "requires":
            return any(selection.get(o) not in choices for o, choices in self.then.items())
        return any(selection.get(o) in choices for o, choices in self.then.items())

    def options_named(self) -> list[tuple[str, list[str]]]:
        if self.kind == "allowed":
            return [(o, [c[i] for c in self.combinations]) for i, o in enumerate(self.options)]
        return [*self.when.items(), *self.then.items()]


class Operation(_Model):
    id: Name
    line: str = Field(min_length=1, max_length=1024,
                      description="the line's path below the tenant: Site/Area/Line")
    cycle_s: float = Field(gt=0, le=86400, description="seconds per unit on the line")
    when: dict[Name, list[Name]] = Field(default_factory=dict)

    @field_validator("when", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _listed(value)

    def applies(self, selection: Selection) -> bool:
        return all(selection.get(o) in choices for o, choices in self.when.items())


class ProductDefinition(_Model):
    """A configurable product of a tenant."""

    name: Name
    title: str | None = Field(default=None, max_length=200)
    lead_time: Duration = 0.0
    options: list[Option] = Field(min_length=1, max_length=100)
    rules: list[Rule] = Field(default_factory=list, max_length=1000)
    routing: list[Operation] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _references(self) -> ProductDefinition:
        options = {o.id: o for o in self.options}
        if len(options) != len(self.options):
            raise ValueError("options repeat an id")
        for what, ids in (("rules", [r.id for r in self.rules]),
                          ("routing", [op.id for op in self.routing])):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{what} repeat an id")
        named = [(f"rule {r.id}", r.options_named()) for r in self.rules]
        named += [(f"operation {op.id}", list(op.when.items())) for op in self.routing]
        for owner, pairs in named:
            for option_id, choices in pairs:
                option = options.get(option_id)
                if option is None:
                    raise ValueError(f"{owner}: unknown option {option_id!r}")
                for choice in choices:
                    if option.choice(choice) is None:
                        raise ValueError(f"{owner}: {choice!r} is not a choice of {option_id}")
        return self

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def parse_product(data: Any) -> ProductDefinition:
    """A product from plain data; :class:`InvalidInput` naming the first field wrong."""
    try:
        return ProductDefinition.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}" if field else message, field) from None


class ConfigurationRefused(InvalidInput):
    """A configuration the product does not allow: an unknown option or choice, a missing one
    (``rule`` None), or broken rules (``rule`` the first, ``broken`` all of them)."""

    def __init__(self, message: str, field: str | None, broken: list[Rule] | None = None,
                 ) -> None:
        super().__init__(message, field)
        self.broken = broken or []

    @property
    def rule(self) -> Rule | None:
        return self.broken[0] if self.broken else None


@dataclass(frozen=True, slots=True)
class Configured:
    """A valid configuration: every option's choice, the lead time, the routing it takes."""

    selection: Selection
    lead_time_s: float
    routing: list[Operation]


def check_selection(product: ProductDefinition, chosen: dict[str, str]) -> Configured:
    """The full configuration of ``chosen`` (option -> choice; defaults filled in), or
    :class:`ConfigurationRefused`."""
    known = [o.id for o in product.options]
    for option_id in chosen:
        if option_id not in known:
            raise ConfigurationRefused(
                f"unknown option {option_id!r} (product {product.name} has "
                f"{', '.join(known)})", f"options.{option_id}")
    selection: Selection = {}
    lead = product.lead_time
    for option in product.options:
        value = chosen.get(option.id, option.default)
        field = f"options.{option.id}"
        if value is None:
            raise ConfigurationRefused(f"option {option.id} must be chosen (one of "
                                       f"{', '.join(c.id for c in option.choices)})", field)
        choice = option.choice(value)
        if choice is None:
            raise ConfigurationRefused(
                f"unknown choice {value!r} for option {option.id} (one of "
                f"{', '.join(c.id for c in option.choices)})", field)
        selection[option.id] = value
        lead = max(lead, choice.lead_time)
    broken = [r for r in product.rules if r.broken_by(selection)]
    if broken:
        first = broken[0]
        raise ConfigurationRefused(f"rule {first.id} ({first.kind}): {first.message}",
                                   "options", broken)
    return Configured(selection, lead, [op for op in product.routing if op.applies(selection)])
