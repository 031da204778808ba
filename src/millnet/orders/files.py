"""Product files: TOML (``[[products]]`` tables) or YAML (a top-level ``products:`` list).

Every problem is reported as ``file:line: field: message``, as rule files report theirs
(:mod:`millnet.rules.files`). YAML gives the line through ``yaml.compose``'s node tree. TOML
keeps none, so it is found in the text: the i-th ``[[products]]`` header starts product i; in
its region a field ``options[1].choices`` is the second ``[[products.options]]`` header (or
the ``options =`` line) and then the ``choices`` key after it; a missing key points at the
header of what should hold it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from millnet.errors import InvalidInput
from millnet.orders.catalog import ProductDefinition

MAX_FILE_BYTES = 4 * 1024 * 1024
_TOML_LINE = re.compile(r"at line (\d+)")


class ProductFileError(InvalidInput):
    """``str()`` is ``path:line: field: message``."""

    def __init__(self, path: Path, line: int | None, field: str | None, message: str) -> None:
        super().__init__(message, field)
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line is not None else str(path)
        self.args = (f"{where}: {field}: {message}" if field else f"{where}: {message}",)


def read_product_file(path: Path | str) -> tuple[list[ProductDefinition],
                                                 list[ProductFileError]]:
    """Every product that parses, and an error for every one that does not."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        return [], [ProductFileError(path, None, None, "a product file ends in .toml, .yaml "
                                                       "or .yml")]
    try:
        raw = path.read_bytes()[:MAX_FILE_BYTES + 1]
        text = raw.decode("utf-8")
    except OSError as exc:
        return [], [ProductFileError(path, None, None, f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return [], [ProductFileError(path, None, None, f"not UTF-8 (byte {exc.start})")]
    if len(raw) > MAX_FILE_BYTES:
        return [], [ProductFileError(path, None, None, f"larger than {MAX_FILE_BYTES} bytes")]
    try:
        items, locate = (_toml(path, text) if suffix == ".toml" else _yaml(path, text))
    except ProductFileError as exc:
        return [], [exc]
    products: list[ProductDefinition] = []
    errors: list[ProductFileError] = []
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            product = ProductDefinition.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            parts: list[str | int] = [p for p in first["loc"] if isinstance(p, str | int)]
            field = _field(i, parts)
            message = str(first["msg"]).removeprefix("Value error, ")
            errors.append(ProductFileError(path, locate(i, parts), field, message))
            continue
        if product.name in names:
            errors.append(ProductFileError(path, locate(i, ["name"]), f"products[{i}].name",
                                           f"duplicate name {product.name!r} (also "
                                           f"products[{names[product.name]}])"))
            continue
        names[product.name] = i
        products.append(product)
    return products, errors


def load_product_file(path: Path | str) -> list[ProductDefinition]:
    products, errors = read_product_file(path)
    if errors:
        raise errors[0]
    return products


def _field(index: int, parts: list[str | int]) -> str:
    out = f"products[{index}]"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _toml(path: Path, text: str) -> tuple[list[Any], Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        raise ProductFileError(path, int(found.group(1)) if found else None, None,
                               f"not valid TOML: {exc}") from None
    if set(data) - {"products"} or not isinstance(data.get("products", []), list):
        raise ProductFileError(path, 1, None, "the file holds [[products]] tables only")
    lines = text.splitlines()

    def headers(name: str, lo: int, hi: int) -> list[int]:
        pattern = re.compile(r"\s*\[\[\s*" + re.escape(name) + r"\s*\]\]\s*(#.*)?$")
        return [n for n in range(lo, hi) if pattern.match(lines[n])]

    def locate(index: int, parts: list[str | int]) -> int | None:
        tops = headers("products", 0, len(lines))
        if index >= len(tops):
            return None
        lo, hi = tops[index], tops[index + 1] if index + 1 < len(tops) else len(lines)
        line, table = lo, "products"
        i = 0
        while i < len(parts):
            key = parts[i]
            if not isinstance(key, str):
                break
            nested = headers(f"{table}.{key}", lo, hi)
            following = parts[i + 1] if i + 1 < len(parts) else None
            if nested and isinstance(following, int) and following < len(nested):
                lo = nested[following]
                later = [n for n in nested if n > lo]
                hi = later[0] if later else hi
                line, table = lo, f"{table}.{key}"
                i += 2
                continue
            assign = re.compile(r"\s*" + re.escape(key) + r"\s*=")
            found = next((n for n in range(lo + 1, hi) if assign.match(lines[n])), None)
            if found is not None:
                line = found
            break
        return line + 1

    return list(data.get("products", [])), locate


def _yaml(path: Path, text: str) -> tuple[list[Any], Any]:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProductFileError(path, mark.line + 1 if mark else None, None,
                               f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ProductFileError(path, None, None, f"not valid YAML: {exc}") from None
    if data is None:
        return [], lambda i, p: None
    if not isinstance(data, dict) or set(data) - {"products"} or \
            not isinstance(data.get("products") or [], list):
        raise ProductFileError(path, 1, None, "the file holds one key, products: a list")
    nodes: list[yaml.Node] = []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "products" and isinstance(value, yaml.SequenceNode):
                nodes = list(value.value)

    def locate(index: int, parts: list[str | int]) -> int | None:
        node: yaml.Node | None = nodes[index] if index < len(nodes) else None
        line = node.start_mark.line + 1 if node is not None else None
        for part in parts:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                child = next((v for k, v in node.value if k.value == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                child = node.value[part]
            if child is None:
                break
            node, line = child, child.start_mark.line + 1
        return line

    return list(data.get("products") or []), locate
