"""The one exception tree of millnet.

    MillnetError
    ├── ConfigError          a configuration key is missing or invalid (names the key)
    ├── ProtocolError        bytes off the network that do not decode (names the field)
    │   └── RejectedMessage  a well-formed message refused by policy; carries a counter reason
    ├── NotFound             an entity that does not exist (or is not visible to the caller)
    ├── Conflict             an entity that already exists or a concurrent change
    ├── InvalidInput         a request whose content is wrong (names the field)
    ├── PermissionDenied     authenticated, but not allowed
    ├── Unauthenticated      no valid credentials
    ├── QuotaExceeded        a tenant's quota (devices, points) would be exceeded
    └── StorageError         a store refused or failed a write; nothing was half-written

Callers catch the narrowest class they can handle; nothing catches ``Exception`` to hide it.
"""

from __future__ import annotations


class MillnetError(Exception):
    """Base of every error millnet raises on purpose."""


class ConfigError(MillnetError):
    """Invalid configuration; ``key`` is the dotted name of the offending setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class ProtocolError(MillnetError):
    """Undecodable input off the network."""


class RejectedMessage(ProtocolError):
    """A message refused at ingest; ``reason`` is the label it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class NotFound(MillnetError):
    """The entity does not exist, or the caller may not know that it does."""


class Conflict(MillnetError):
    """The entity already exists or changed concurrently."""


class InvalidInput(MillnetError):
    """A request with wrong content; ``field`` names what was wrong when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class PermissionDenied(MillnetError):
    """Authenticated, but the role or tenant does not allow this."""


class Unauthenticated(MillnetError):
    """Missing or invalid credentials."""


class QuotaExceeded(MillnetError):
    """Creating the entity would exceed a configured per-tenant quota."""


class StorageError(MillnetError):
    """A store failed a write or read; nothing was half-written."""
