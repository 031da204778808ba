"""The ``[notify]`` section: notification targets (webhook, SMTP, MQTT) and retries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class NotifySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
