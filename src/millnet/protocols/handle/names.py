"""The case rule and syntax checks for handle names.

millnet's rule, the one Handle.Net applies (hdllib ``Util.upperCasePrefix``): the prefix is
case-insensitive and stored ASCII upper-cased; the suffix is case-sensitive and kept as
given. Handles under the global prefix ``0.`` (``0.NA/88.100.5``) are prefix names
themselves, so they are upper-cased whole. Only ASCII letters fold: folding other scripts
would differ between implementations.
"""

from __future__ import annotations

import re
import unicodedata

from millnet.errors import InvalidInput

MAX_HANDLE_BYTES = 4096
_PRINTABLE_ASCII = re.compile(r"[ -~]*")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def fold_prefix(prefix: str) -> str:
    """A prefix as handles are compared: ASCII letters upper-cased, nothing else changed."""
    return prefix.translate(_ASCII_UPPER)


def _check_characters(handle: str) -> None:
    if _PRINTABLE_ASCII.fullmatch(handle):  # the common case, in C
        return
    for ch in handle:
        # Fast path for printable ASCII, by far the common case.
        if " " <= ch <= "~":
            continue
        if ch.isascii() or unicodedata.category(ch) in ("Cc", "Cs"):
            raise InvalidInput(f"control character U+{ord(ch):04X} in handle", field="handle")


def normalize_handle(handle: str) -> str:
    """The canonical form of ``handle``; raises InvalidInput (field "handle") if invalid."""
    if len(handle) > MAX_HANDLE_BYTES:  # cheap bound before encoding
        raise InvalidInput(f"longer than {MAX_HANDLE_BYTES} bytes", field="handle")
    _check_characters(handle)
    if len(handle.encode("utf-8")) > MAX_HANDLE_BYTES:
        raise InvalidInput(f"longer than {MAX_HANDLE_BYTES} bytes in UTF-8", field="handle")
    prefix, slash, suffix = handle.partition("/")
    if not slash:
        raise InvalidInput("a handle is prefix/suffix; no '/' found", field="handle")
    if not prefix:
        raise InvalidInput("empty prefix", field="handle")
    if not suffix:
        raise InvalidInput("empty suffix", field="handle")
    if prefix.startswith("0."):
        return handle.translate(_ASCII_UPPER)
    return f"{fold_prefix(prefix)}/{suffix}"


def split_handle(handle: str) -> tuple[str, str]:
    """(prefix, suffix) of a normalized handle."""
    prefix, _, suffix = normalize_handle(handle).partition("/")
    return prefix, suffix


def prefix_handle(prefix: str) -> str:
    """The handle that describes a prefix at the global level: ``0.NA/<PREFIX>``."""
    return normalize_handle(f"0.NA/{prefix}")
