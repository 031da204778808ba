"""The ``[rules]`` section: where rule files are and how often the stream is evaluated.

::

    [rules]
    files = ["rules/cnc.toml", "/etc/millnet/plant.yaml"]   # relative: to this file's directory
    tick_ms = 10                 # how often the ingest stream is evaluated (1 to 1000 ms)
    scan_ms = 100                # how often rules on latest values (expressions, suppression,
                                 # anomaly detectors) are evaluated, like a PLC scan
    max_rules_per_tenant = 10000
    max_bindings = 1000000       # rule x device pairs the node evaluates at most
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RulesSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    files: tuple[Path, ...] = ()
    tick_ms: int = Field(default=10, ge=1, le=1000)
    scan_ms: int = Field(default=100, ge=1, le=10_000)
    max_rules_per_tenant: int = Field(default=10_000, ge=1)
    max_bindings: int = Field(default=1_000_000, ge=1)

    def resolved_files(self, config_file: Path | None) -> tuple[Path, ...]:
        """The rule files, a relative path taken from the configuration file's directory (the
        working directory when the settings came from no file)."""
        base = config_file.parent if config_file is not None else Path.cwd()
        return tuple(path if path.is_absolute() else base / path for path in self.files)
