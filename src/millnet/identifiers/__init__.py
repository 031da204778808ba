"""Identifier service: the handle store, prefix delegation, resolution and administration.

* :class:`IdentifierStore` (:mod:`.store`) - handles and values in the registry's database;
* :class:`IdentifierService` (:mod:`.service`) - resolution with value permissions, HS_ADMIN
  authorization, secret keys, administration operations;
* :mod:`.delegation` - prefix records ``0.NA/<prefix>``, :func:`bootstrap_prefix`,
  :func:`locate` (:class:`Local` or :class:`Referral`);
* :mod:`.errors` - errors carrying their Handle response code, :func:`error_code`.

The case rule is the codec's :func:`~millnet.protocols.handle.normalize_handle`: prefixes are
case-insensitive (stored ASCII upper-cased), suffixes case-sensitive.
"""

from .core.delegation import Local, Referral, bootstrap_prefix, locate
from .core.errors import (
    AuthenticationFailed,
    AuthenticationNeeded,
    HandleExists,
    HandleNotFound,
    InvalidValue,
    NotAuthorized,
    NotResponsible,
    ValueExists,
    ValueNotFound,
    error_code,
)
from .core.service import IdentifierService, ValueCheck, check_layouts
from .core.store import MAX_BATCH, IdentifierStore
from .core.values import select_values, type_matches

__all__ = [
    "MAX_BATCH", "AuthenticationFailed", "AuthenticationNeeded", "HandleExists",
    "HandleNotFound", "IdentifierService", "IdentifierStore", "InvalidValue", "Local",
    "NotAuthorized", "NotResponsible", "Referral", "ValueCheck", "ValueExists", "ValueNotFound",
    "bootstrap_prefix", "check_layouts", "error_code", "locate", "select_values",
    "type_matches",
]
