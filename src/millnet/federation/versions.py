"""Comparing product versions: PEP 440 strings and vendor firmware strings under one total order.

Every version maps to a sort key (:func:`version_key`), a tuple of segments; comparing keys is
a total order by construction, so sorting and range checks never contradict each other, even
over a mix of schemes.

* A PEP 440 version (``2.0b3``, ``1.4.post2``, ``v4.2.1``) is parsed by ``packaging.version``
  and its parts (epoch, release, pre, post, dev) become segments, so it orders exactly as
  ``packaging`` orders it (local labels ``+abc`` are ignored).
* Anything else (``V4.2 SP1``, ``R2021a``, ``FW_3.10-rc2``) is split into runs of digits and
  runs of letters (separators ``. - _ +`` and spaces are dropped, letters compared in lower
  case, a leading ``v`` ignored). Letter runs are classed: ``dev`` < ``a/alpha`` <
  ``b/beta`` < ``c/rc/pre/preview`` < other words < (end of version) < ``post/p/sp/patch/
  update/u/r/rev`` < any number. So ``4.2b1 < 4.2 < 4.2sp1 < 4.2.1``.

Trailing zero numbers of a run of numbers are dropped, so ``1.0 == 1.0.0``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from packaging.version import InvalidVersion, Version

from millnet.errors import InvalidInput
from millnet.model.limits import ascii_digits

Segment = tuple[int, int, str]
VersionKey = tuple[Segment, ...]

MAX_VERSION: Final = 64
_END: Final[Segment] = (1, 0, "")
_PRE_RANK: Final = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "c": 3, "rc": 3,
                    "pre": 3, "preview": 3}
_POST: Final = frozenset({"post", "p", "sp", "patch", "update", "u", "r", "rev"})
_TOKEN = re.compile(r"[0-9]+|[a-z]+")
_ALLOWED = re.compile(r"[0-9A-Za-z.\-_+ ]+")


def _num(n: int) -> Segment:
    return (3, n, "")


def _word(text: str) -> Segment:
    if text in _POST:
        return (2, 0, text)
    return (0, _PRE_RANK.get(text, 4), text)


def _strip_zero_runs(segments: list[Segment]) -> list[Segment]:
    """Drop the zeros that end each run of numbers (``1.0.0`` is ``1``)."""
    out: list[Segment] = []
    for seg in segments:
        if seg[0] != 3:
            while out and out[-1] == _num(0):
                out.pop()
        out.append(seg)
    while out and out[-1] == _num(0):
        out.pop()
    return out


def _pep440_key(v: Version) -> VersionKey:
    release = _strip_zero_runs([_num(n) for n in v.release])
    segments = [_num(v.epoch), *release]
    if v.pre is not None:
        segments += [_word(v.pre[0]), _num(v.pre[1])]
    if v.post is not None:
        segments += [_word("post"), _num(v.post)]
    if v.dev is not None:
        segments += [_word("dev"), _num(v.dev)]
    return (*segments, _END)


def _vendor_key(text: str) -> VersionKey:
    lowered = text.lower()
    if lowered.startswith("v") and ascii_digits(lowered[1:2], 1):
        lowered = lowered[1:]
    tokens = [_num(int(t)) if ascii_digits(t, 64) else _word(t) for t in _TOKEN.findall(lowered)]
    return (_num(0), *_strip_zero_runs(tokens), _END)


@lru_cache(maxsize=4096)
def version_key(text: str) -> VersionKey:
    """The sort key of ``text``; :class:`InvalidInput` (field ``version``) when it is empty,
    too long or holds characters no version has."""
    stripped = text.strip()
    if not stripped or len(stripped) > MAX_VERSION or not _ALLOWED.fullmatch(stripped):
        raise InvalidInput(f"{text[:MAX_VERSION]!r} is not a version", "version")
    try:
        return _pep440_key(Version(stripped))
    except InvalidVersion:
        return _vendor_key(stripped)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)
