"""MQTT targets: the notice's JSON document (the webhook's body) published to a topic from a
template, over one connection per target kept open.

The connection is made on the first notice and kept; when it breaks, the attempt fails (and is
retried by the notifier) and the next attempt reconnects, no sooner than a backoff (doubling
from 0.5 s up to 30 s while connecting fails) so a dead broker costs one quick failure per
attempt, not a connection storm. With QoS 1 or 2 a publish counts as delivered once the broker
acknowledged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiomqtt

from millnet.aio import keep_cancel
from millnet.model.alarms import AlarmNotice
from millnet.notify import payload
from millnet.notify.base import DeliveryFailed
from millnet.notify.settings import MqttTarget

RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 30.0


def topic(template: str, notice: AlarmNotice) -> str:
    """The topic of ``notice``: wildcards and NUL in its fields' values become ``_``."""
    fields = {k: v.replace("+", "_").replace("#", "_").replace("\x00", "_")
              for k, v in payload.template_fields(notice).items()}
    return payload.render(template, fields)


class MqttSender:
    def __init__(self, target: MqttTarget) -> None:
        self._target = target
        secret = target.secret()
        self._password = secret.get_secret_value() if secret is not None else None
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._backoff = RECONNECT_FIRST_S

    def describe(self) -> str:
        return f"mqtt://{self._target.host}:{self._target.port}"

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise DeliveryFailed(f"broker unreachable; reconnecting in {wait:.1f} s")
            t = self._target
            client = aiomqtt.Client(
                t.host, t.port, username=t.username, password=self._password,
                identifier=t.client_id or f"millnet-notify-{t.name}", timeout=t.timeout_s,
                protocol=aiomqtt.ProtocolVersion.V311)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as exc:
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, RECONNECT_MAX_S)
                raise DeliveryFailed(f"cannot connect: {exc}") from None
            self._backoff = RECONNECT_FIRST_S
            self._client = client
            return client

    async def _drop(self, client: aiomqtt.Client) -> None:
        async with self._lock:
            if self._client is not client:
                return
            self._client = None
        with contextlib.suppress(aiomqtt.MqttError):  # gone already: nothing to close cleanly
            await client.__aexit__(None, None, None)

    async def send(self, delivery_id: str, notice: AlarmNotice) -> None:
        client = await self._connected()
        t = self._target
        try:
            await keep_cancel(client.publish(
                topic(t.topic, notice), payload.body(notice, delivery_id), qos=t.qos,
                retain=t.retain, timeout=t.timeout_s))
        except aiomqtt.MqttError as exc:
            await self._drop(client)
            raise DeliveryFailed(f"publish failed: {exc}") from None

    async def close(self) -> None:
        client = self._client
        if client is not None:
            await self._drop(client)
