"""Rule files: TOML (``[[rules]]`` tables) or YAML (a top-level ``rules:`` list).

Every problem is reported as ``file:line: field: message``. YAML gives line numbers through the
node tree of ``yaml.compose`` (only the safe loader is used). ``tomllib`` keeps none, so the
line of a TOML problem is found in the text: the i-th ``[[rules]]`` header starts rule i, its
region runs to the next ``[[rules]]`` header, and within it the line that assigns the field's
key (``above = ...``, ``applies_to = {...}``, ``[rules.applies_to]`` then ``devices = ...``)
is the line reported; a key that is missing points at the rule's header. A TOML syntax error
keeps tomllib's own message, which names line and column.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from millnet.errors import InvalidInput
from millnet.rules.definitions import Rule, parse_rule

__all__ = ["MAX_FILE_BYTES", "RuleFileError", "load_rule_file", "read_rule_file"]

MAX_FILE_BYTES = 16 * 1024 * 1024
_TOML_HEADER = re.compile(r"\s*\[\[\s*\"?rules\"?\s*\]\]\s*(#.*)?$")
_TOML_LINE = re.compile(r"at line (\d+)")
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class RuleFileError(InvalidInput):
    """A problem in a rule file: ``str()`` is ``path:line: field: message``."""

    def __init__(self, path: Path, line: int | None, field: str | None, message: str) -> None:
        super().__init__(message, field)
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line is not None else str(path)
        self.args = (f"{where}: {field}: {message}" if field else f"{where}: {message}",)


def load_rule_file(path: Path | str) -> list[Rule]:
    """The rules of a file; RuleFileError for the first problem (``errors`` of
    :func:`read_rule_file` lists them all)."""
    rules, errors = read_rule_file(path)
    if errors:
        raise errors[0]
    return rules


def read_rule_file(path: Path | str) -> tuple[list[Rule], list[RuleFileError]]:
    """Every rule that parses, and an error for every one that does not (one per rule)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        return [], [RuleFileError(path, None, None,
                                  "a rule file ends in .toml, .yaml or .yml")]
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [], [RuleFileError(path, None, None, f"cannot read: {exc.strerror}")]
    if len(raw) > MAX_FILE_BYTES:
        return [], [RuleFileError(path, None, None, f"larger than {MAX_FILE_BYTES} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [RuleFileError(path, None, None, f"not UTF-8 (byte {exc.start})")]
    reader = _TomlFile(path, text) if suffix == ".toml" else _YamlFile(path, text)
    try:
        items = reader.items()
    except RuleFileError as exc:
        return [], [exc]
    return _parse_items(reader, items)


def _parse_items(reader: _TomlFile | _YamlFile,
                 items: Sequence[Any]) -> tuple[list[Rule], list[RuleFileError]]:
    rules: list[Rule] = []
    errors: list[RuleFileError] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            rule = parse_rule(item, f"rules[{i}]")
        except InvalidInput as exc:
            message = str(exc)
            if exc.field and message.startswith(exc.field + ": "):
                message = message[len(exc.field) + 2:]
            errors.append(reader.error(i, exc.field or f"rules[{i}]", message))
            continue
        if rule.name in seen:
            errors.append(reader.error(i, f"rules[{i}].name", f"duplicate name {rule.name!r} "
                                       f"(also rules[{seen[rule.name]}])"))
            continue
        seen[rule.name] = i
        rules.append(rule)
    return rules, errors


def _field_parts(field: str) -> list[str | int]:
    """``rules[2].applies_to.devices[0]`` -> ``["applies_to", "devices", 0]`` (after the
    rule's own index)."""
    parts: list[str | int] = [m.group(1) if m.group(1) else int(m.group(2))
                              for m in _FIELD_PART.finditer(field)]
    return parts[2:]


class _YamlFile:
    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._text = text
        self._nodes: list[yaml.Node] = []

    def items(self) -> Sequence[Any]:
        try:
            data = yaml.safe_load(self._text)
            root = yaml.compose(self._text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            raise RuleFileError(self._path, line, None,
                                f"not valid YAML: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise RuleFileError(self._path, None, None, f"not valid YAML: {exc}") from None
        if data is None:
            return []
        if not isinstance(data, Mapping) or set(data) - {"rules"}:
            raise RuleFileError(self._path, 1, None, "the file must hold one key, rules: a "
                                "list of rules")
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            raise RuleFileError(self._path, 1, "rules", "must be a list of rules")
        assert isinstance(root, yaml.MappingNode)
        for key, value in root.value:
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                self._nodes = list(value.value)
        return rules

    def error(self, index: int, field: str, message: str) -> RuleFileError:
        node: yaml.Node | None = self._nodes[index] if index < len(self._nodes) else None
        line = node.start_mark.line + 1 if node is not None else None
        for part in _field_parts(field):
            node = _child(node, part)
            if node is None:
                break
            line = node.start_mark.line + 1
        return RuleFileError(self._path, line, field, message)


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if key.value == part:
                # A scalar on a later line than its key (an empty value): point at the key.
                found: yaml.Node = value if value.start_mark.line == key.start_mark.line or \
                    isinstance(value, yaml.CollectionNode) else key
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and \
            part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


class _TomlFile:
    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._lines = text.splitlines()
        self._text = text

    def items(self) -> Sequence[Any]:
        try:
            data = tomllib.loads(self._text)
        except tomllib.TOMLDecodeError as exc:
            match = _TOML_LINE.search(str(exc))
            raise RuleFileError(self._path, int(match.group(1)) if match else None, None,
                                f"not valid TOML: {exc}") from None
        if set(data) - {"rules"}:
            extra = sorted(set(data) - {"rules"})[0]
            raise RuleFileError(self._path, self._key_line(0, len(self._lines), extra),
                                extra, "unknown key; rules go in [[rules]] tables")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise RuleFileError(self._path, None, "rules", "must be [[rules]] tables")
        self._headers = [n for n, line in enumerate(self._lines) if _TOML_HEADER.match(line)]
        return rules

    def error(self, index: int, field: str, message: str) -> RuleFileError:
        if index >= len(self._headers):  # rules = [{...}] written inline: no header to count
            return RuleFileError(self._path, None, field, message)
        start = self._headers[index]
        end = self._headers[index + 1] if index + 1 < len(self._headers) else len(self._lines)
        line = start
        for part in _field_parts(field):
            if not isinstance(part, str):
                break
            found = self._key_line(line, end, part)
            if found is None:
                break
            line = found - 1
        return RuleFileError(self._path, line + 1, field, message)

    def _key_line(self, start: int, end: int, key: str) -> int | None:
        """The 1-based line in [start, end) that assigns ``key`` or opens its sub-table."""
        name = re.escape(key)
        assign = re.compile(rf"\s*(?:[\w.\"-]+\.)?[\"']?{name}[\"']?\s*[=.]")
        table = re.compile(rf"\s*\[\s*rules\.[\"']?{name}[\"']?\s*\]")
        inline = re.compile(rf"[{{,]\s*[\"']?{name}[\"']?\s*=")
        for pattern in (assign, table, inline):
            for n in range(start, end):
                if pattern.match(self._lines[n]) or (pattern is inline and
                                                     pattern.search(self._lines[n])):
                    return n + 1
        return None
