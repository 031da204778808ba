"""Core types every millnet package speaks. Imports nothing from millnet."""

from millnet.model.alarms import AlarmNotice, AlarmState, ConditionChange, Priority
from millnet.model.assets import AssetKind, DataType, PointSpec
from millnet.model.telemetry import Quality, SampleBatch, SampleBuffer, TextSample

__all__ = [
    "AlarmNotice",
    "AlarmState",
    "AssetKind",
    "ConditionChange",
    "DataType",
    "PointSpec",
    "Priority",
    "Quality",
    "SampleBatch",
    "SampleBuffer",
    "TextSample",
]
