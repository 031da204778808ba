"""Core types every millnet package speaks. Imports nothing from millnet."""

from millnet.model.alarms import AlarmNotice, AlarmState, ConditionChange, Priority
from millnet.model.assets import AssetKind, DataType, PointSpec
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.model.telemetry import Quality, SampleBatch, SampleBuffer, TextSample

__all__ = [
    "AlarmNotice",
    "AlarmState",
    "AssetKind",
    "ConditionChange",
    "DataType",
    "EventKind",
    "PointSpec",
    "Priority",
    "Quality",
    "SampleBatch",
    "SampleBuffer",
    "SecurityEvent",
    "Severity",
    "TextSample",
]
