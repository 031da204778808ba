"""E-mail notifications against a real aiosmtpd server on an ephemeral port (on the test's loop):
plain delivery, authentication (right and wrong password), a refused recipient."""

from __future__ import annotations

import asyncio
import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from millnet.notify.outbox import OutboxStore
from millnet.notify.settings import NotifySection
from tests.integration.test_notify_webhook import FAST_RETRY, Outcomes, notice, rows, run, running

USER, PASSWORD = "millnet", "mail-pw"


class Capture:
    """An aiosmtpd handler keeping what it accepts; refuses the addresses in ``refuse``."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.messages: asyncio.Queue[tuple[EmailMessage, Envelope, Session]] = asyncio.Queue()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.put_nowait((parsed, envelope, session))
        return "250 Message accepted"


LOGINS: list[tuple[bytes, bool]] = []


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    LOGINS.append((data.login if isinstance(data, LoginPassword) else b"", ok))
    return AuthResult(success=ok, handled=False)


async def _server(handler: Capture, *, auth: bool = False) -> tuple[asyncio.Server, int]:
    def protocol() -> SMTP:
        if auth:
            return SMTP(handler, hostname="mail.test", auth_required=True,
                        auth_require_tls=False, authenticator=_authenticate)
        return SMTP(handler, hostname="mail.test")

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _mail(port: int, secrets: dict[str, str] | None = None, **extra: Any) -> NotifySection:
    target = {"name": "mail", "kind": "smtp", "host": "127.0.0.1", "port": port,
              "security": "none", "from": "millnet@plant.test", "to": ["ops@plant.test",
                                                                        "lead@plant.test"],
              "default": True, **extra}
    return NotifySection.model_validate({"targets": [target], "retry": FAST_RETRY,
                                         "secrets": secrets or {}})


def test_an_alarm_is_mailed_with_subject_text_and_html(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        capture = Capture()
        server, port = await _server(capture)
        outcomes = Outcomes()
        async with running(store, _mail(port), outcomes) as notifier:
            notifier.submit([notice()])
            await outcomes.until("mail", "delivered")
        message, envelope, _ = capture.messages.get_nowait()
        server.close()
        assert envelope.mail_from == "millnet@plant.test"
        assert envelope.rcpt_tos == ["ops@plant.test", "lead@plant.test"]
        assert message["Subject"] == "[high] high-temp activated: plant-1/press/line-3/press-7"
        [row] = rows(store)
        assert message["X-Millnet-Delivery"] == row.delivery_id
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert "temperature above 90 C" in text.get_content()
        assert "Priority: high" in text.get_content() and "Value: 91.5" in text.get_content()
        assert "<table>" in html.get_content()

    run(scenario, tmp_path)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_authentication_with_the_password_from_the_secrets(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        capture = Capture()
        server, port = await _server(capture, auth=True)
        outcomes = Outcomes()
        good = _mail(port, secrets={"MAIL": PASSWORD}, username=USER)
        async with running(store, good, outcomes) as notifier:
            notifier.submit([notice()])
            await outcomes.until("mail", "delivered")
        _, _, session = capture.messages.get_nowait()
        assert session.authenticated and LOGINS[-1] == (USER.encode(), True)

        bad = _mail(port, username=USER, password="wrong")
        async with running(store, bad, outcomes) as notifier:
            notifier.submit([notice(2)])
            await outcomes.until("mail", "failed")
            status = notifier.status()[0]
        server.close()
        assert status.last_error is not None and status.last_error.startswith("SMTP 535")
        assert (status.failed, status.retried, status.pending) == (1, 0, 0)  # permanent
        assert capture.messages.empty()

    run(scenario, tmp_path)


def test_a_refused_recipient_is_a_permanent_failure(tmp_path: Path) -> None:
    async def scenario(store: OutboxStore) -> None:
        capture = Capture(refuse=frozenset({"ops@plant.test", "lead@plant.test"}))
        server, port = await _server(capture)
        outcomes = Outcomes()
        async with running(store, _mail(port), outcomes) as notifier:
            notifier.submit([notice()])
            await outcomes.until("mail", "failed")
            status = notifier.status()[0]
        server.close()
        assert status.last_error == "recipients refused: [550, 550]"
        assert outcomes.count("mail", "retry") == 0
        assert [r.status for r in rows(store)] == ["failed"]

    run(scenario, tmp_path)
