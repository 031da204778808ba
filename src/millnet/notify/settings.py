"""The ``[notify]`` section: notification targets (webhook, SMTP, MQTT) and retries.

Targets are ``[[notify.targets]]`` tables discriminated on ``kind``. A target's secret (the
webhook's HMAC key, the SMTP or MQTT password) may be written in the table, or better given as
``[notify.secrets]`` keyed by the target's name, which the node's usual environment overrides
reach: ``MILLNET_NOTIFY__SECRETS__OPS_HOOK=...`` sets the secret of target ``ops_hook`` (names
are matched case-insensitively, ``-`` as ``_``, since environment names are upper case).

Errors name the field as written: ``notify.targets[2].url`` (the kind is dispatched by hand, so
pydantic's discriminator tag does not appear in the path).
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from millnet.model.alarms import Priority
from millnet.model.limits import ascii_digits

#: Every ``AlarmNotice.event`` value.
EVENTS = frozenset({"activated", "cleared", "acknowledged", "shelved", "unshelved",
                    "suppressed", "unsuppressed", "out_of_service", "in_service"})
#: What subject and topic templates may name (see millnet.notify.payload.template_fields).
TEMPLATE_FIELDS = frozenset({"tenant", "priority", "event", "state", "rule", "rule_id",
                             "asset", "asset_id", "alarm_id", "message"})
TARGET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _priority(value: Any) -> Any:
    if isinstance(value, str):
        return Priority.parse(value)
    return value


PriorityField = Annotated[Priority, BeforeValidator(_priority)]


def check_template(text: str) -> str:
    """``text`` if it names only :data:`TEMPLATE_FIELDS` as plain ``{name}`` fields."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"not a valid template: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            allowed = ", ".join(sorted(TEMPLATE_FIELDS))
            raise ValueError(f"template field {{{name}}} unknown; use plain {{name}} with one "
                             f"of {allowed}")
    return text


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter; a notification is given up after ``max_attempts``
    attempts or ``max_age_s`` seconds, whichever comes first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=12, ge=1, le=1000)
    max_age_s: float = Field(default=86_400.0, gt=0)
    backoff_base_s: float = Field(default=1.0, gt=0, le=3600)
    backoff_cap_s: float = Field(default=600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _cap_above_base(self) -> RetryPolicy:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s: must be at least backoff_base_s")
        return self


class TargetBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TARGET_NAME)
    # Which AlarmNotice.event values this target gets.
    events: frozenset[str] = frozenset({"activated", "cleared"})
    # The least urgent priority sent: "low" (the default) sends all, "high" high and critical.
    min_priority: PriorityField = Priority.LOW
    # Also gets the notices of rules that name no (existing) target.
    default: bool = False
    # Deliveries in flight at once to this target.
    concurrency: int = Field(default=4, ge=1, le=256)
    retry: RetryPolicy | None = None  # None: [notify.retry]

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - EVENTS)
        if unknown:
            raise ValueError(f"unknown events {unknown}; one of {', '.join(sorted(EVENTS))}")
        return value

    def secret(self) -> SecretStr | None:
        """The target's one secret (webhook key or password)."""
        return None

    def with_secret(self, value: SecretStr) -> Self:
        return self


class WebhookTarget(TargetBase):
    kind: Literal["webhook"] = "webhook"
    url: AnyHttpUrl
    secret_key: SecretStr | None = Field(default=None, alias="secret")
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    headers: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("headers")
    @classmethod
    def _own_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.lower().startswith("x-millnet-") or key.lower() in ("content-type",
                                                                      "content-length"):
                raise ValueError(f"header {key!r} is set by millnet")
        return value

    def secret(self) -> SecretStr | None:
        return self.secret_key

    def with_secret(self, value: SecretStr) -> Self:
        return self.model_copy(update={"secret_key": value})


class SmtpTarget(TargetBase):
    kind: Literal["smtp"] = "smtp"
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    # none: plain (a local relay); starttls: upgrade on the submission port; tls: implicit (465).
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from", min_length=3, pattern=r"@")
    to: tuple[str, ...] = Field(min_length=1)
    subject: str = "[{priority}] {rule} {event}: {asset}"
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return check_template(value)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if "@" not in address or any(c in address for c in "\r\n"):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value

    def secret(self) -> SecretStr | None:
        return self.password

    def with_secret(self, value: SecretStr) -> Self:
        return self.model_copy(update={"password": value})


class MqttTarget(TargetBase):
    kind: Literal["mqtt"] = "mqtt"
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    topic: str = "millnet/alarms/{tenant}/{priority}"
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    client_id: str = ""  # default: millnet-notify-<name>
    timeout_s: float = Field(default=5.0, gt=0, le=300)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        check_template(value)
        if not value or "+" in value or "#" in value:
            raise ValueError("a topic to publish to: not empty, no wildcards")
        return value

    def secret(self) -> SecretStr | None:
        return self.password

    def with_secret(self, value: SecretStr) -> Self:
        return self.model_copy(update={"password": value})


AnyTarget = WebhookTarget | SmtpTarget | MqttTarget
_BY_KIND: dict[str, type[TargetBase]] = {
    "webhook": WebhookTarget, "smtp": SmtpTarget, "mqtt": MqttTarget}


def _dispatch(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a target by its ``kind``; a ValidationError raised here keeps its locations
    (``url``), so the path reads ``targets[2].url``, not ``targets[2].webhook.url``."""
    if isinstance(value, TargetBase):
        return value
    kind = value.get("kind") if isinstance(value, dict) else None
    spec = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if spec is None:
        error = PydanticCustomError("kind", "unknown or missing kind {kind}; one of {kinds}",
                                    {"kind": repr(kind), "kinds": ", ".join(_BY_KIND)})
        raise ValidationError.from_exception_data(
            "target", [InitErrorDetails(type=error, loc=("kind",), input=kind)])
    return spec.model_validate(value)


Target = Annotated[AnyTarget, WrapValidator(_dispatch)]


def secret_key(name: str) -> str:
    """How ``[notify.secrets]`` (and so the environment) spells a target's name."""
    return name.lower().replace("-", "_").replace(".", "_")


class NotifySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: tuple[Target, ...] = ()
    # Target secrets by target name: MILLNET_NOTIFY__SECRETS__<NAME> in the environment.
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    # Undelivered notifications kept per target; beyond it the outbox is full (when_full).
    max_pending_per_target: int = Field(default=10_000, ge=1, le=10_000_000)
    # drop_oldest: the oldest undelivered notification is given up (failed, "outbox full");
    # drop_new: the new one is. Either way counted per target (dropped) and logged.
    when_full: Literal["drop_oldest", "drop_new"] = "drop_oldest"
    # Delivered and failed rows are deleted from the outbox after this many days.
    retention_days: float = Field(default=7.0, gt=0, le=3650)

    @model_validator(mode="after")
    def _targets(self) -> NotifySection:
        seen: dict[str, int] = {}
        for i, target in enumerate(self.targets):
            if target.name in seen:
                raise _field_error(f"targets[{i}].name", f"duplicate target name {target.name!r} "
                                   f"(also targets[{seen[target.name]}])")
            seen[target.name] = i
        by_key = {secret_key(t.name): i for i, t in enumerate(self.targets)}
        for key in self.secrets:
            if secret_key(key) not in by_key:
                raise _field_error(f"secrets.{key}", "names no target")
        filled = list(self.targets)
        for key, value in self.secrets.items():
            i = by_key[secret_key(key)]
            filled[i] = filled[i].with_secret(value)
        for i, target in enumerate(filled):
            if isinstance(target, WebhookTarget) and target.secret_key is None:
                env = f"MILLNET_NOTIFY__SECRETS__{secret_key(target.name).upper()}"
                raise _field_error(f"targets[{i}].secret", "a webhook signs its requests: set "
                                   f"secret, or {env} in the environment")
        object.__setattr__(self, "targets", tuple(filled))
        return self

    def target(self, name: str) -> AnyTarget | None:
        return next((t for t in self.targets if t.name == name), None)

    def retry_of(self, target: TargetBase) -> RetryPolicy:
        return target.retry or self.retry


def _field_error(where: str, message: str) -> ValidationError:
    """A validation error at ``where`` (``targets[2].name``) relative to the section."""
    loc: list[str | int] = []
    for part in where.replace("]", "").replace("[", ".").split("."):
        loc.append(int(part) if ascii_digits(part, 9) else part)
    error = PydanticCustomError("notify", "{detail}", {"detail": message})
    return ValidationError.from_exception_data(
        "notify", [InitErrorDetails(type=error, loc=tuple(loc), input=None)])
