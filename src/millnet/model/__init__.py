"""Core types every millnet package speaks. Imports nothing from millnet."""

from millnet.model.assets import AssetKind, DataType, PointSpec
from millnet.model.telemetry import Quality, SampleBatch, SampleBuffer, TextSample

__all__ = [
    "AssetKind",
    "DataType",
    "PointSpec",
    "Quality",
    "SampleBatch",
    "SampleBuffer",
    "TextSample",
]
