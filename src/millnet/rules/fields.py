"""Reading the fields of a rule's flat form, each failure an InvalidInput naming its field.

Kept apart from :mod:`.definitions` (the model) so that the model stays readable; nothing here
knows what a rule is beyond the shapes of its values.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from millnet.errors import InvalidInput
from millnet.model.limits import name_problem, text_problem
from millnet.rules.expr import Expression, compile_expression

_RULE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)[ ]?(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION_S = 86_400.0


def show(value: object) -> str:
    """A value as an error message quotes it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_rule_name(value: object, field: str) -> str:
    """Rule names, asset types and notification targets: 1 to 64 of A-Z a-z 0-9 . _ -."""
    if not isinstance(value, str) or _RULE_NAME.fullmatch(value) is None:
        raise InvalidInput(f"must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-' (got "
                           f"{show(value)})", field)
    return value


def parse_duration(value: object, field: str) -> float:
    """Seconds, given as a number or as "500ms", "5s", "2m", "1h"; 0 to one day."""
    seconds: float
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"must be a duration: seconds or a string like '5s', '500ms', "
                           f"'2m', '1h' (got {show(value)})", field)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise InvalidInput(f"must be a duration like '5s', '500ms', '2m', '1h' (got "
                               f"{show(value)})", field)
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        seconds = float(value)
    if not 0.0 <= seconds <= MAX_DURATION_S:  # also refuses NaN
        raise InvalidInput(f"must be 0 s to 1 day (got {show(value)})", field)
    return seconds


class Fields:
    """The keys of one mapping (a rule, its ``applies_to``), read one by one."""

    def __init__(self, data: object, prefix: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidInput(f"must be a table of keys (got {type(data).__name__})",
                               prefix or None)
        self._data: Mapping[Any, Any] = data
        self._prefix = prefix

    def name(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def required(self, key: str) -> Any:
        value = self._data.get(key)
        if value is None:
            raise InvalidInput("required", self.name(key))
        return value

    def allow(self, known: Sequence[str], other_kinds: Mapping[str, str] | None = None) -> None:
        """Refuse keys not in ``known``, suggesting the closest known one."""
        for key in self._data:
            if key in known:
                continue
            text = str(key)
            if other_kinds and text in other_kinds:
                raise InvalidInput(f"not a key of this kind of rule ({text!r} belongs to "
                                   f"{other_kinds[text]} rules)", self.name(text[:64]))
            close = difflib.get_close_matches(text, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; known keys: {', '.join(known)}"
            raise InvalidInput(f"unknown key{hint}", self.name(text[:64]))

    def sub(self, key: str, known: Sequence[str]) -> Fields:
        inner = Fields(self.required(key), self.name(key))
        inner.allow(known)
        return inner

    def text(self, key: str, max_len: int) -> str:
        value = self._data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidInput(f"must be a string (got {show(value)})", self.name(key))
        problem = text_problem(value, max_len)
        if problem is not None:
            raise InvalidInput(problem, self.name(key))
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidInput(f"must be true or false (got {show(value)})", self.name(key))
        return value

    def number(self, key: str) -> float | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"must be a number (got {show(value)})", self.name(key))
        if not math.isfinite(value):
            raise InvalidInput(f"must be finite (got {value})", self.name(key))
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"must be a whole number from {low} to {high} (got "
                               f"{show(value)})", self.name(key))
        return value

    def duration(self, key: str, *, required: bool = False) -> float:
        value = self.required(key) if required else self._data.get(key)
        return 0.0 if value is None else parse_duration(value, self.name(key))

    def delays(self) -> tuple[float, float]:
        return self.duration("on_delay"), self.duration("off_delay")

    def point(self, key: str) -> str:
        value = self.required(key)
        problem = name_problem(value)
        if problem is not None:
            raise InvalidInput(f"not a point name: {problem}", self.name(key))
        return str(value)

    def _list(self, key: str, max_items: int) -> list[Any]:
        value = self._data.get(key)
        if value is None:
            return []
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InvalidInput(f"must be a list (got {show(value)})", self.name(key))
        if len(value) > max_items:
            raise InvalidInput(f"at most {max_items} items (got {len(value)})", self.name(key))
        return list(value)

    def names(self, key: str, max_items: int, *, free_text: bool = False) -> tuple[str, ...]:
        """A list of unique names (or, with ``free_text``, strings of up to 200 characters)."""
        items = self._list(key, max_items)
        for i, item in enumerate(items):
            where = f"{self.name(key)}[{i}]"
            if not free_text:
                check_rule_name(item, where)
            elif not isinstance(item, str) or text_problem(item, 200) is not None:
                raise InvalidInput(f"must be a string of up to 200 characters (got "
                                   f"{show(item)})", where)
            if item in items[:i]:
                raise InvalidInput(f"{item!r} is listed twice", where)
        return tuple(items)

    def points(self, key: str, max_items: int) -> tuple[str, ...]:
        items = self._list(key, max_items)
        if not items:
            raise InvalidInput("must list at least one point", self.name(key))
        for i, item in enumerate(items):
            problem = name_problem(item)
            if problem is not None:
                raise InvalidInput(f"not a point name: {problem}", f"{self.name(key)}[{i}]")
            if item in items[:i]:
                raise InvalidInput(f"{item!r} is listed twice", f"{self.name(key)}[{i}]")
        return tuple(items)

    def globs(self, key: str, max_items: int) -> tuple[str, ...]:
        items = self._list(key, max_items)
        for i, item in enumerate(items):
            problem = name_problem(item, allow_slash=False)
            if problem is not None:
                raise InvalidInput(f"not a device name pattern: {problem}",
                                   f"{self.name(key)}[{i}]")
        return tuple(items)

    def state_values(self, key: str) -> tuple[float, ...]:
        """Numbers; true and false stand for 1 and 0 (boolean points)."""
        out: list[float] = []
        for i, item in enumerate(self._list(key, 64)):
            if isinstance(item, bool):
                out.append(1.0 if item else 0.0)
            elif isinstance(item, int | float) and math.isfinite(item):
                out.append(float(item))
            else:
                raise InvalidInput(f"must be a number, true or false (got {show(item)})",
                                   f"{self.name(key)}[{i}]")
        return tuple(out)

    def branch(self, key: str) -> str:
        """An asset path prefix: asset names joined by '/' (as the asset API shows paths)."""
        value = self.required(key)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"must be an asset path like 'Acme/Suzhou' (got {show(value)})",
                               self.name(key))
        for part in value.split("/"):
            problem = name_problem(part, allow_slash=False)
            if problem is not None:
                raise InvalidInput(f"each '/'-separated asset name {problem} (in "
                                   f"{show(value)})", self.name(key))
        return value

    def expression(self, key: str, *, required: bool) -> Expression | None:
        value = self.required(key) if required else self._data.get(key)
        return None if value is None else compile_expression(value, self.name(key))

    def params(self, key: str) -> dict[str, float]:
        value = self._data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or len(value) > 32:
            raise InvalidInput("must be a table of at most 32 names and numbers",
                               self.name(key))
        out: dict[str, float] = {}
        for name, number in value.items():
            where = f"{self.name(key)}.{str(name)[:64]}"
            if not isinstance(name, str) or _PARAM_NAME.fullmatch(name) is None:
                raise InvalidInput("parameter names are identifiers (a-z, 0-9, '_')", where)
            if isinstance(number, bool) or not isinstance(number, int | float) or \
                    not math.isfinite(number):
                raise InvalidInput(f"must be a finite number (got {show(number)})", where)
            out[name] = float(number)
        return out
