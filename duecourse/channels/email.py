"""Email over SMTP (aiosmtplib), configured by one URL:

    DUECOURSE_EMAIL_URL=smtp://user:pass@host:587?starttls=true&from=collections@lender.example

`smtps://` connects with implicit TLS (port 465 by default). `starttls=true` requires
STARTTLS, `false` never tries it, absent upgrades when the server offers it. `cafile=`
names a CA bundle to trust (a private relay). A refusal the server calls permanent (5xx
for the recipient or the message) is final; a dropped connection, a timeout or a 4xx is
retried by the send activity. SMTP cannot look a message up afterwards (`find` is
UNKNOWABLE), but the Message-ID derived from the idempotency key lets a mail system
recognise a resend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import structlog

from duecourse.channels.base import UNKNOWABLE, ChannelError, OutgoingMessage, Sighting
from duecourse.channels.email_message import build_email, message_id, wire_bytes
from duecourse.channels.routing import ChannelSettingError
from duecourse.channels.unsubscribe_tokens import TokenSigner, signer_from_settings
from duecourse.settings import Settings
from duecourse.store.ledger import Ledger

log = structlog.get_logger(__name__)

SETTING = "DUECOURSE_EMAIL_URL"
EXAMPLE = "smtp://user:pass@host:587?starttls=true&from=collections@lender.example"
TIMEOUT = 15.0
"""Seconds for each SMTP step: inside the send activity's 20 s channel call."""
ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to deliver; `password` never appears in any message or log."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool | None = None  # None: when the server offers it
    cafile: str | None = None


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ChannelSettingError(f"{SETTING}: {name}= must be true or false, got {value!r}")


def parse_email_url(url: str) -> SmtpTarget:
    """The target in `url`; ChannelSettingError naming the setting for anything unusable
    (the message never repeats the URL: it holds the password)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ChannelSettingError(f"{SETTING} is not a URL like {EXAMPLE}") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise ChannelSettingError(f"{SETTING} must start with smtp:// or smtps:// (implicit "
                                  f"TLS), e.g. {EXAMPLE}")
    if not parts.hostname:
        raise ChannelSettingError(f"{SETTING} names no mail server host, e.g. {EXAMPLE}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"from", "starttls", "cafile"}
    if unknown:
        raise ChannelSettingError(f"{SETTING}: unknown option(s) {', '.join(sorted(unknown))}"
                                  " (known: from, starttls, cafile)")
    sender = parseaddr(query.get("from", ""))[1]
    if not sender or "@" not in sender or not sender.rpartition("@")[2]:
        raise ChannelSettingError(f"{SETTING} needs the sender address as from=, e.g. "
                                  f"{EXAMPLE}")
    implicit = parts.scheme == "smtps"
    starttls = _flag(query.get("starttls"), "starttls")
    if implicit and starttls:
        raise ChannelSettingError(f"{SETTING}: smtps:// is already TLS; drop starttls=true")
    return SmtpTarget(
        host=parts.hostname, port=port or (465 if implicit else 587 if starttls else 25),
        sender=sender, username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit, starttls=False if implicit else starttls,
        cafile=query.get("cafile"))


def _plain(text: str) -> str:
    """A server's reply without the addresses it may quote (no PII in errors or logs)."""
    return ADDRESS.sub("<address>", " ".join(text.split()))[:200]


class SmtpChannel:
    """Sends each message as one SMTP transaction to its single recipient."""

    def __init__(self, target: SmtpTarget, public_url: str,
                 signer: TokenSigner | None) -> None:
        self.target = target
        self.name = f"smtp:{target.host}"[:64]
        self._public_url = public_url.rstrip("/")
        self._signer = signer
        if signer is None:
            log.warning("email goes out without a one-click unsubscribe link: set "
                        "DUECOURSE_INBOUND_SECRET (or payload keys) to sign one")

    def unsubscribe_url(self, message: OutgoingMessage) -> str | None:
        if self._signer is None or not message.loan_id:
            return None
        return f"{self._public_url}/v1/unsubscribe/{self._signer.mint(message.loan_id)}"

    async def send(self, message: OutgoingMessage) -> str:
        mail = build_email(message, self.target.sender,
                           unsubscribe_url=self.unsubscribe_url(message))
        t = self.target
        try:
            await aiosmtplib.send(
                wire_bytes(mail), sender=t.sender, recipients=[message.recipient],
                hostname=t.host, port=t.port, username=t.username, password=t.password,
                use_tls=t.implicit_tls, start_tls=t.starttls, cert_bundle=t.cafile,
                timeout=TIMEOUT)
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            raise ChannelError(f"the mail server refused the recipient ({_codes(codes)})",
                               permanent=all(code >= 500 for code in codes)) from None
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as err:
            what = "recipient" if isinstance(err, aiosmtplib.SMTPRecipientRefused) \
                else "message"
            raise ChannelError(f"the mail server refused the {what} ({err.code} "
                               f"{_plain(err.message)})", permanent=err.code >= 500) from None
        except aiosmtplib.SMTPResponseException as err:  # sender, auth, greeting: ours
            raise ChannelError(f"the mail server answered {err.code} {_plain(err.message)}"
                               ) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
                aiosmtplib.SMTPServerDisconnected, OSError, TimeoutError) as err:
            raise ChannelError(f"the mail server at {t.host}:{t.port} could not be reached "
                               f"({type(err).__name__})") from None
        except aiosmtplib.SMTPException as err:  # e.g. STARTTLS or AUTH not offered
            raise ChannelError(f"the mail server at {t.host}:{t.port} could not be used: "
                               f"{_plain(str(err))}") from None
        return message_id(message.idempotency_key, t.sender)

    async def find(self, idempotency_key: str) -> Sighting:
        return UNKNOWABLE  # SMTP has no lookup; the stable Message-ID dedupes downstream


def _codes(codes: list[int]) -> str:
    return ", ".join(str(code) for code in codes)


def smtp_channel(settings: Settings, ledger: Ledger) -> SmtpChannel:
    """The email adapter for DUECOURSE_EMAIL_URL (the ledger is not needed: SMTP keeps no
    state of ours)."""
    del ledger
    if settings.email_url is None:
        raise ChannelSettingError(f"{SETTING} is not set")
    target = parse_email_url(settings.email_url.get_secret_value())
    return SmtpChannel(target, settings.public_url, signer_from_settings(settings))
