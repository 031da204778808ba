"""The ``[orders]`` section: product files and how often the tracker writes.

::

    [orders]
    files = ["products/pumps.toml"]   # relative: to this file's directory
    flush_interval_s = 1.0            # progress written, new orders loaded, every this often

The products of the files are the node's default tenant's (``mqtt.tenant``); they replace those
of the same name at every start (the API may define others, and replace these until the next
start). Their lines are looked up when an order is placed (the lines may not have reported yet
when the node starts).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class OrdersSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    files: tuple[Path, ...] = ()
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)

    def resolved_files(self, config_file: Path | None) -> tuple[Path, ...]:
        base = config_file.parent if config_file is not None else Path.cwd()
        return tuple(path if path.is_absolute() else base / path for path in self.files)
