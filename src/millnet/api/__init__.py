"""The HTTP API of a node: :func:`create_app` builds it over a registry and a telemetry store."""

from millnet.api.app import create_app
from millnet.api.params import Limits

__all__ = ["Limits", "create_app"]
