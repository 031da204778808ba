"""Webhook targets: an HTTP POST of the notice as JSON, signed with HMAC-SHA256.

``X-Millnet-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is HMAC-SHA256 over
``"<t>.<body>"`` with the target's secret (the scheme Stripe uses). A receiver recomputes it
(:func:`verify`), compares in constant time, and refuses a ``t`` too far from its clock, which
defeats replays of a captured request. ``X-Millnet-Delivery`` is the same on every attempt of
one notification: receivers drop duplicates with it.

2xx is delivered; 408, 429 and 5xx answers, timeouts and connection errors are retried; any other
answer (other 4xx, redirects) is a permanent failure: the URL or the secret is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from importlib.metadata import version

import httpx

from millnet.model.alarms import AlarmNotice
from millnet.model.limits import ascii_digits
from millnet.notify import payload
from millnet.notify.base import DeliveryFailed
from millnet.notify.settings import WebhookTarget

SIGNATURE_HEADER = "X-Millnet-Signature"
DELIVERY_HEADER = "X-Millnet-Delivery"
EVENT_HEADER = "X-Millnet-Event"
#: From the installed distribution: the package root is composition, which notify may not import.
USER_AGENT = f"millnet/{version('millnet')}"
TOLERANCE_S = 300  # how far a receiver should accept ``t`` from its own clock
_RETRIED = frozenset({408, 429})


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Millnet-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, now: float | None = None,
           tolerance_s: float = TOLERANCE_S) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s`` of
    ``now`` (what a receiver does; the reference for docs/notifications.md)."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    stamps = parts.get("t", [])
    if len(stamps) != 1 or not ascii_digits(stamps[0], 20):
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


def classify(status: int) -> DeliveryFailed | None:
    """None for a delivered answer, else the failure it means."""
    if 200 <= status < 300:
        return None
    permanent = status < 500 and status not in _RETRIED
    return DeliveryFailed(f"HTTP {status}", permanent=permanent)


class WebhookSender:
    """POSTs to one URL over a kept-alive connection pool (``concurrency`` connections)."""

    def __init__(self, target: WebhookTarget, client: httpx.AsyncClient | None = None) -> None:
        secret = target.secret()
        if secret is None:
            raise ValueError(f"webhook {target.name} has no secret")
        self._secret = secret.get_secret_value().encode()
        self._url = str(target.url)
        self._headers: Mapping[str, str] = {
            **target.headers, "Content-Type": "application/json",
            "User-Agent": USER_AGENT}
        self._client = client or httpx.AsyncClient(
            timeout=target.timeout_s, follow_redirects=False,
            limits=httpx.Limits(max_connections=target.concurrency))
        self._where = f"{target.url.scheme}://{target.url.host}:{target.url.port}"

    def describe(self) -> str:
        return self._where  # the path and query may hold a token

    async def send(self, delivery_id: str, notice: AlarmNotice) -> None:
        content = payload.body(notice, delivery_id)
        headers = {**self._headers, EVENT_HEADER: notice.event, DELIVERY_HEADER: delivery_id,
                   SIGNATURE_HEADER: signature(self._secret, content, int(time.time()))}
        try:
            response = await self._client.post(self._url, content=content, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryFailed("timed out") from None
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        failure = classify(response.status_code)
        if failure is not None:
            raise failure

    async def close(self) -> None:
        await self._client.aclose()
