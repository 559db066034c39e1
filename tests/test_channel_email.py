"""Email over SMTP against a real SMTP server (aiosmtpd) started by each test: the adapter
connects over a real socket, and the received message is read back with the `email`
stdlib - both parts, the headers, the one-click opt-out link. End to end, loans run on
the time-skipping test server with a worker whose email kind goes to that server."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duecourse.channels import ChannelError, OutboxChannel, OutgoingMessage
from duecourse.channels.email import parse_email_url, smtp_channel
from duecourse.channels.router import ChannelRouter
from duecourse.channels.routing import ChannelSettingError, channels_from_settings
from duecourse.channels.unsubscribe_tokens import signer_from_settings
from duecourse.cli.mail_catcher import SENDER, catcher_url, mail_catcher
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.templates.html import html_body
from duecourse.templates.locale_format import format_day, format_money, localised
from tests.factories import daytime_zone, make_loan
from tests.test_workflow_faults import rig
from tests.test_workflow_negotiation import STANDARD

SECRET = "test-inbound-secret"
SUBJECT = "还款提醒\uff1a借款 L-1 待还 ¥1,000.00"  # a full-width colon, as the template has


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it receives, refuses the recipients it is told to
    with the reply it is told to."""

    refuse: dict[str, str] = field(default_factory=dict)
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"mailer",
                                                                            b"p@ss"))

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.raw.append(envelope.content)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.received.append(mail)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if m["To"] == address]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox) -> Iterator[int]:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            authenticator=mailbox.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def email_settings(port: int, **kwargs: Any) -> Settings:
    url = f"smtp://mailer:p%40ss@127.0.0.1:{port}?from=collections@lender.example"
    return Settings(email_url=SecretStr(url), public_url="https://collect.example/",
                    inbound_secret=SecretStr(SECRET), lender_name="Acme Lending",
                    lender_contact="400-800-1234", **kwargs)


def outgoing(key: str = "L-1:notice-email:1", **kwargs: Any) -> OutgoingMessage:
    fields: dict[str, Any] = dict(
        idempotency_key=key, channel="email", recipient="li.wei@example.com",
        subject=SUBJECT, body="Hi <b>Li</b> & co,\nline two",
        language="zh-CN", loan_id="L-1", case_id="C-1")
    return OutgoingMessage(**{**fields, **kwargs})


def parts(mail: EmailMessage) -> tuple[str, str]:
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    return (str(text.get_content()).replace("\r\n", "\n"),
            str(html.get_content()).replace("\r\n", "\n"))


# ------------------------------------------------------------------ settings
def test_the_url_gives_host_port_sender_and_tls() -> None:
    target = parse_email_url("smtp://u:p%2Fw@mail.example:2525?starttls=true&from=a@b.example")
    assert (target.host, target.port, target.sender) == ("mail.example", 2525, "a@b.example")
    assert (target.username, target.password, target.starttls) == ("u", "p/w", True)
    implicit = parse_email_url("smtps://mail.example?from=a@b.example")
    assert implicit.implicit_tls and implicit.port == 465 and implicit.starttls is False


@pytest.mark.parametrize(("url", "words"), [
    ("http://u:hunter2@mail.example?from=a@b.example", "smtp://"),
    ("smtp://u:hunter2@:25?from=a@b.example", "no mail server host"),
    ("smtp://u:hunter2@mail.example:25", "from="),
    ("smtp://u:hunter2@mail.example:25?from=nobody", "from="),
    ("smtp://u:hunter2@mail.example:99999?from=a@b.example", "not a URL"),
    ("smtp://u:hunter2@mail.example?from=a@b.example&starttls=maybe", "true or false"),
    ("smtp://u:hunter2@mail.example?from=a@b.example&tls=1", "unknown option"),
])
def test_a_bad_url_names_the_setting_and_never_the_password(url: str, words: str) -> None:
    settings = Settings(email_url=SecretStr(url))
    with pytest.raises(ChannelSettingError) as caught:
        channels_from_settings(settings, None)  # type: ignore[arg-type]
    assert "DUECOURSE_EMAIL_URL" in str(caught.value) and words in str(caught.value)
    assert "hunter2" not in str(caught.value)


# ------------------------------------------------------------------ locale formatting
def test_money_and_dates_read_as_each_locale_writes_them() -> None:
    assert format_money("1,000.00 CNY", "zh-CN") == "¥1,000.00"
    assert format_money("1,000.00 CNY", "en") == "CN¥1,000.00"
    assert format_money("12,345,678.91 USD", "en") == "$12,345,678.91", "Decimal, no float"
    assert format_day("2026-11-29", "zh-CN") == "2026年11月29日"
    assert format_day("2026-11-29", "en") == "November 29, 2026"
    values = {"amount": "1,000.00 CNY", "due_date": "2026-11-29", "loan_id": "L-2026-11-29",
              "instalment_amount": "300.00 CNY", "instalment_due": "2026-12-01",
              "days_past_due": "3"}
    assert localised(values, "zh-CN") == {
        "amount": "¥1,000.00", "due_date": "2026年11月29日", "loan_id": "L-2026-11-29",
        "instalment_amount": "¥300.00", "instalment_due": "2026年12月1日",
        "days_past_due": "3"}
    assert localised({"amount": "about a thousand"}, "en") == {"amount": "about a thousand"}


def test_the_html_part_escapes_and_keeps_every_line() -> None:
    html = html_body("Hi <b>Li</b> & co,\nline two\n\nThis is a debt collector.", "en")
    assert "<b>" not in html and "&lt;b&gt;Li&lt;/b&gt; &amp; co," in html
    assert "line two</p>" in html and "<p>This is a debt collector.</p>" in html


# ------------------------------------------------------------------ the adapter
async def test_a_message_arrives_as_text_and_html_with_stable_id_and_opt_out() -> None:
    box = Mailbox()
    with smtp_server(box) as port:
        settings = email_settings(port)
        channel = smtp_channel(settings, None)  # type: ignore[arg-type]
        assert channel.name == "smtp:127.0.0.1"
        first = await channel.send(outgoing())
        again = await channel.send(outgoing())
        other = await channel.send(outgoing(key="L-1:reminder-email:1"))
    assert first == again != other
    assert len(box.received) == 3
    mail = box.received[0]
    assert box.envelopes[0] == ("collections@lender.example", ["li.wei@example.com"])
    assert box.logins[0] == ("mailer", "p@ss"), "the URL's credentials, decoded"
    assert mail["Message-ID"] == first == box.received[1]["Message-ID"]
    assert first.endswith("@lender.example>") and "notice" not in first
    assert mail["From"] == "collections@lender.example" and mail["To"] == "li.wei@example.com"
    assert mail["Subject"] == SUBJECT
    assert "=?utf-8?" in mail.as_string().lower(), "a Chinese subject is encoded"
    assert mail["Date"] is not None and mail["Date"].datetime.tzinfo is not None
    assert mail.get_content_type() == "multipart/alternative"
    text, html = parts(mail)
    assert text.strip() == "Hi <b>Li</b> & co,\nline two"
    assert "Hi &lt;b&gt;Li&lt;/b&gt; &amp; co,<br>" in html and 'lang="zh-CN"' in html
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = mail["List-Unsubscribe"]
    assert link.startswith("<https://collect.example/v1/unsubscribe/") and link.endswith(">")
    signer = signer_from_settings(settings)
    assert signer is not None
    allowed = signer.verify(link.strip("<>").rsplit("/", 1)[1])
    assert allowed is not None and (allowed.loan_id, allowed.channel) == ("L-1", "email")
    assert "li.wei" not in link, "the link carries no address"
    assert f"\r\nList-Unsubscribe: {link}\r\n".encode() in box.raw[0], \
        "the link as written, never folded into encoded-words"


async def test_without_a_signing_key_the_opt_out_headers_are_left_out(tmp_path: Any) -> None:
    box = Mailbox()
    with smtp_server(box) as port:
        settings = email_settings(port).model_copy(update={
            "inbound_secret": None, "payload_keys": None, "payload_key_file": None,
            "data_dir": tmp_path})
        await smtp_channel(settings, None).send(outgoing())  # type: ignore[arg-type]
    [mail] = box.received
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None


async def test_a_550_for_the_recipient_is_permanent_and_a_451_is_retried() -> None:
    box = Mailbox(refuse={"gone@example.com": "550 5.1.1 <gone@example.com>: no such user",
                          "busy@example.com": "451 4.3.0 try again later"})
    with smtp_server(box) as port:
        channel = smtp_channel(email_settings(port), None)  # type: ignore[arg-type]
        with pytest.raises(ChannelError) as refused:
            await channel.send(outgoing(recipient="gone@example.com"))
        with pytest.raises(ChannelError) as busy:
            await channel.send(outgoing(recipient="busy@example.com"))
    assert refused.value.permanent and "550" in str(refused.value)
    assert "gone@example.com" not in str(refused.value), "no address in the error"
    assert not busy.value.permanent and "451" in str(busy.value)
    assert box.received == []


async def test_a_mail_server_that_is_down_is_a_transient_failure() -> None:
    channel = smtp_channel(email_settings(free_port()), None)  # type: ignore[arg-type]
    with pytest.raises(ChannelError) as down:
        await channel.send(outgoing())
    assert not down.value.permanent and "could not be reached" in str(down.value)
    assert "p@ss" not in str(down.value)


# ------------------------------------------------------------------ end to end
async def test_loans_receive_their_emails_formatted_with_disclosures(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """A CN loan in Chinese and a US loan in English, through the real send activity: the
    email kind goes to the SMTP server, everything else to the outbox."""
    box = Mailbox()
    now = await ts_env.get_current_time()
    zone = daytime_zone(now)
    cn = make_loan(now, dpd=2, tz=zone, email="li.wei@example.com")
    us = make_loan(now, dpd=2, tz=zone, currency="USD", jurisdiction="US", language="en",
                   email="sam.lee@example.com", name="Sam Lee", phones=["+12025550143"],
                   address="1 Main St, Springfield, IL 62701")
    with smtp_server(box) as port:
        email = smtp_channel(email_settings(port), ledger)
        router = ChannelRouter(OutboxChannel(ledger), {"email": email})
        async with rig(ts_env, ledger, channel=router) as r:
            for loan in (cn, us):
                await r.client.start(loan, STANDARD)
            for loan in (cn, us):
                await r.settle(loan.loan_id)
            attempts = await r.rows(t.contact_attempts)
    sent = [a for a in attempts if a["channel"] == "email" and a["status"] == "sent"]
    assert {a["loan_id"] for a in sent} == {cn.loan_id, us.loan_id}
    assert all(a["sent_via"] == "smtp:127.0.0.1" for a in sent)
    [zh] = box.to("li.wei@example.com")[:1]
    text, html = parts(zh)
    due = cn.due_date
    for part in (text, html):
        assert "¥1,000.00" in part and "CNY" not in part
        assert f"{due.year}年{due.month}月{due.day}日" in part and due.isoformat() not in part
        assert "如对催收有任何疑问或投诉" in part, "the CN complaints line in both parts"
    assert zh["Message-ID"] == next(a["provider_message_id"] for a in sent
                                    if a["loan_id"] == cn.loan_id)
    [en] = box.to("sam.lee@example.com")[:1]
    text, html = parts(en)
    for part in (text, html):
        assert "This is a communication from a debt collector." in " ".join(part.split())
        assert "$1,000.00" in part and "USD" not in part
        assert f"was due on {format_day(us.due_date.isoformat(), 'en')}" in part
        assert "reply UNSUBSCRIBE" in part, "the US email opt-out line in both parts"
    assert en["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert datetime.now(UTC) >= en["Date"].datetime


# ------------------------------------------------------------------ duecourse dev --mail
async def test_the_dev_mail_catcher_keeps_each_message_as_an_eml_file(tmp_path: Any) -> None:
    """What `duecourse dev --mail` runs: the real adapter sending to the catcher."""
    seen: list[tuple[str, Any]] = []
    folder = tmp_path / "mail"
    async with mail_catcher(folder, free_port(), lambda s, p: seen.append((s, p))) as port:
        settings = Settings(email_url=SecretStr(catcher_url(port)), data_dir=tmp_path)
        channel = smtp_channel(settings, None)  # type: ignore[arg-type]
        message_id = await channel.send(outgoing())
    [(subject, path)] = seen
    assert subject == SUBJECT and path.parent == folder and path.suffix == ".eml"
    kept = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert kept["Message-ID"] == message_id and kept["From"] == SENDER
    assert "line two" in parts(kept)[0]  # type: ignore[arg-type]
