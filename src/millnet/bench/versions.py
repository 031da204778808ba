"""The versions a benchmark figure was taken with: it is only reproducible with the same ones."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("millnet", "duckdb", "pyarrow", "numpy", "protobuf", "paho-mqtt", "aiomqtt",
             "sqlalchemy", "fastapi", "uvicorn", "uvloop", "msgspec", "asyncua", "pymodbus")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
