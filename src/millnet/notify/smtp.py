"""E-mail targets over SMTP (aiosmtplib): a plain-text message with a short HTML part.

One connection per message: alarm mail is rare enough, and a relay that closes idle
connections then needs no reconnect logic. A 5xx answer (a refused sender or recipients, failed
authentication, an unsupported STARTTLS) is permanent; 4xx answers, timeouts and connection
errors are retried.
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from millnet.model.alarms import AlarmNotice
from millnet.notify import payload
from millnet.notify.base import DeliveryFailed
from millnet.notify.settings import SmtpTarget

_LINES = (("Event", "event"), ("State", "state"), ("Priority", "priority"),
          ("Rule", "rule_name"), ("Asset", "asset_path"), ("Value", "value"),
          ("Time", "ts"), ("User", "user"), ("Comment", "comment"), ("Alarm", "alarm_id"),
          ("Delivery", "delivery_id"))


def _header_safe(text: str) -> str:
    return " ".join(text.split())  # no CR/LF from a rule's name or message in a header


def message(target: SmtpTarget, delivery_id: str, notice: AlarmNotice) -> EmailMessage:
    """The e-mail of one notice to ``target``'s recipients."""
    doc = payload.document(notice, delivery_id)
    subject = payload.render(target.subject, payload.template_fields(notice))
    rows = [(label, doc[key]) for label, key in _LINES if doc[key] is not None]
    text = notice.message + "\n\n" + "\n".join(f"{label}: {value}" for label, value in rows)
    cells = "".join(f"<tr><th align='left'>{label}</th><td>{html.escape(str(value))}</td></tr>"
                    for label, value in rows)
    msg = EmailMessage()
    msg["Subject"] = _header_safe(subject)[:250]
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=delivery_id, domain="millnet")
    msg["X-Millnet-Delivery"] = delivery_id
    msg["X-Millnet-Event"] = notice.event
    msg.set_content(text)
    msg.add_alternative(f"<p>{html.escape(notice.message)}</p><table>{cells}</table>",
                        subtype="html")
    return msg


def _permanent(code: int) -> bool:
    return 500 <= code < 600


class SmtpSender:
    def __init__(self, target: SmtpTarget) -> None:
        self._target = target
        secret = target.secret()
        self._password = secret.get_secret_value() if secret is not None else None

    def describe(self) -> str:
        return f"smtp://{self._target.host}:{self._target.port}"

    async def send(self, delivery_id: str, notice: AlarmNotice) -> None:
        t = self._target
        try:
            await aiosmtplib.send(
                message(t, delivery_id, notice), hostname=t.host, port=t.port,
                username=t.username, password=self._password, timeout=t.timeout_s,
                use_tls=t.security == "tls", start_tls=t.security == "starttls")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryFailed(f"recipients refused: {codes}",
                                 permanent=all(_permanent(c) for c in codes)) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryFailed(f"server does not support it: {exc}", permanent=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"SMTP {exc.code}: {exc.message}",
                                 permanent=_permanent(exc.code)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        return None
