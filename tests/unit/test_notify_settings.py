"""The [notify] section: targets by kind, secrets from the environment, errors naming fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from millnet.config import Settings, load_settings
from millnet.errors import ConfigError
from millnet.model.alarms import Priority
from millnet.notify.settings import MqttTarget, SmtpTarget, WebhookTarget

HOOK = '''
[[notify.targets]]
name = "ops-hook"
kind = "webhook"
url = "https://hooks.example.com/millnet"
'''


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return load_settings(path, environ=env or {})


def test_every_kind_parses_with_its_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, HOOK + '''secret = "s3cret"
min_priority = "high"
events = ["activated"]
headers = {Authorization = "Bearer x"}

[[notify.targets]]
name = "mail"
kind = "smtp"
host = "smtp.example.com"
from = "millnet@example.com"
to = ["ops@example.com"]
default = true

[[notify.targets]]
name = "bus"
kind = "mqtt"
host = "broker"
password = "pw"
''')
    hook, mail, bus = settings.notify.targets
    assert isinstance(hook, WebhookTarget) and hook.min_priority is Priority.HIGH
    assert hook.events == {"activated"}
    secret = hook.secret()
    assert secret is not None and secret.get_secret_value() == "s3cret"
    assert isinstance(mail, SmtpTarget) and mail.port == 587 and mail.security == "starttls"
    assert mail.default and mail.events == {"activated", "cleared"}
    assert isinstance(bus, MqttTarget) and bus.topic == "millnet/alarms/{tenant}/{priority}"
    assert bus.qos == 1 and not bus.retain
    assert "s3cret" not in repr(settings) and "pw" not in str(settings.notify.model_dump())


def test_a_secret_comes_from_the_environment(tmp_path: Path) -> None:
    settings = _load(tmp_path, HOOK, {"MILLNET_NOTIFY__SECRETS__OPS_HOOK": "from-env"})
    secret = settings.notify.targets[0].secret()
    assert secret is not None and secret.get_secret_value() == "from-env"


@pytest.mark.parametrize(("text", "key"), [
    (HOOK, "notify.targets[0].secret"),
    (HOOK + 'secret = "k"\ntimeout_s = -1\n', "notify.targets[0].timeout_s"),
    (HOOK + 'secret = "k"\nurl2 = 1\n', "notify.targets[0].url2"),
    (HOOK + 'secret = "k"\nevents = ["exploded"]\n', "notify.targets[0].events"),
    (HOOK + 'secret = "k"\nmin_priority = "urgent"\n', "notify.targets[0].min_priority"),
    (HOOK + 'secret = "k"\n' + HOOK + 'secret = "k"\n', "notify.targets[1].name"),
    ('[[notify.targets]]\nname = "x"\nkind = "pager"\n', "notify.targets[0].kind"),
    ('[[notify.targets]]\nname = "x"\n', "notify.targets[0].kind"),
    ('[[notify.targets]]\nname = "m"\nkind = "mqtt"\nhost = "h"\ntopic = "a/{nope}"\n',
     "notify.targets[0].topic"),
    ('[[notify.targets]]\nname = "m"\nkind = "mqtt"\nhost = "h"\ntopic = "a/#"\n',
     "notify.targets[0].topic"),
    ('[[notify.targets]]\nname = "m"\nkind = "smtp"\nhost = "h"\nfrom = "a@b"\nto = []\n',
     "notify.targets[0].to"),
    ('[[notify.targets]]\nname = "m"\nkind = "smtp"\nhost = "h"\nfrom = "a@b"\nto = ["x@y"]\n'
     'subject = "{rule.__class__}"\n', "notify.targets[0].subject"),
    ('[notify.secrets]\nnobody = "x"\n', "notify.secrets.nobody"),
    ('[notify.retry]\nbackoff_base_s = 10\nbackoff_cap_s = 1\n', "notify.retry"),
])
def test_errors_name_the_field(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert caught.value.key == key


def test_errors_do_not_echo_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, '[[notify.targets]]\nname = "x"\nkind = "pager"\nsecret = "hush"\n')
    assert "hush" not in str(caught.value)
