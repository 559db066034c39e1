"""The two SMS gateway API shapes the SMS adapter speaks: what each request looks like,
where the provider's message id is in its answer, and which refusals are final.

Generic profile (our own contract, for gateways and in-house relays):

- send: `POST {DUECOURSE_SMS_URL}` with `Authorization: Bearer <token>`, an
  `Idempotency-Key: <key>` header and JSON `{"to", "from", "text", "idempotency_key",
  "status_callback"}`; 200/201/202 with JSON `{"id": "<message id>"}`. A gateway that
  already accepted a message under the key answers with that message's id and sends
  nothing. Delivery receipts go to `status_callback` (`/v1/inbound/sms/status`).
- look up: `GET {DUECOURSE_SMS_URL}/{key}` (the key percent-encoded) with the same bearer
  token; 200 with `{"id", "accepted_at"?}` (ISO 8601) when a message was accepted under
  the key, 404 when none was.
- errors: 408, 409 (the key is being processed), 425, 429 and 5xx are retried; any other
  4xx is final. An error body may carry `{"error": "<code>"}`; only that short code is
  kept, never free text (it may quote the number).

Twilio profile (Messages API, 2010-04-01): `POST {url}/2010-04-01/Accounts/{sid}/
Messages.json`, form-encoded `To`, `From` (or `MessagingServiceSid` for an `MG...`
sender), `Body`, `StatusCallback` (`/v1/inbound/twilio/status`), basic auth `sid:token`,
the key as `I-Twilio-Idempotency-Token`; the answer's `sid` is the message id. Twilio's
error JSON `{"code", "message", "status"}`: 429 and 5xx are retried, other 4xx (21211
invalid To, 21610 unsubscribed, ...) are final. Twilio has no lookup by key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from duecourse.channels.base import UNKNOWABLE, ChannelError, OutgoingMessage, Sighting
from duecourse.channels.provider_http import json_object

TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,40}")

TWILIO_CODES = {
    20003: "authentication failed (check DUECOURSE_SMS_ACCOUNT and DUECOURSE_SMS_TOKEN)",
    20429: "too many requests",
    21211: "the 'To' number is not a valid phone number",
    21408: "the account may not send to this region",
    21606: "the 'From' number cannot send SMS",
    21610: "the recipient has unsubscribed (replied STOP)",
    21612: "Twilio cannot route to this number",
    21614: "the 'To' number is not a mobile number",
    21617: "the body is too long",
}
"""Twilio error codes worth a sentence; their own messages may quote the number."""


@dataclass(frozen=True)
class Gateway:
    """What a profile needs from the settings, already checked by `sms_channel`."""

    url: str  # generic: the messages endpoint; Twilio: the API base
    token: str
    sender: str
    public_url: str
    account: str = ""


@dataclass(frozen=True)
class Call:
    """One HTTP request to the gateway."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    auth: tuple[str, str] | None = None


class Profile(Protocol):
    name: str

    def send_call(self, gateway: Gateway, message: OutgoingMessage, to: str) -> Call: ...

    def message_id(self, answer: httpx.Response) -> str: ...

    def refusal(self, answer: httpx.Response) -> ChannelError: ...

    def find_call(self, gateway: Gateway, idempotency_key: str) -> Call | None: ...

    def sighting(self, answer: httpx.Response) -> Sighting: ...


def _id_in(answer: httpx.Response, field: str, who: str) -> str:
    value = json_object(answer).get(field)
    if not isinstance(value, str) or not value:
        # it may have taken the message: transient, so the retry under the same key
        # gets the id from a gateway that honours the key
        raise ChannelError(f"{who} answered {answer.status_code} without a message id")
    return value


def _transient(status: int) -> bool:
    return status in TRANSIENT_4XX or status >= 500 or status < 400


class GenericProfile:
    name = "generic"

    def send_call(self, gateway: Gateway, message: OutgoingMessage, to: str) -> Call:
        return Call("POST", gateway.url, {
            "Authorization": f"Bearer {gateway.token}",
            "Idempotency-Key": message.idempotency_key,
        }, json={"to": to, "from": gateway.sender, "text": message.body,
                 "idempotency_key": message.idempotency_key,
                 "status_callback": f"{gateway.public_url}/v1/inbound/sms/status"})

    def message_id(self, answer: httpx.Response) -> str:
        return _id_in(answer, "id", "the SMS gateway")

    def refusal(self, answer: httpx.Response) -> ChannelError:
        code = json_object(answer).get("error")
        detail = f", {code}" if isinstance(code, str) and _CODE.fullmatch(code) else ""
        status = answer.status_code
        verb = "failed" if _transient(status) else "refused the message"
        return ChannelError(f"the SMS gateway {verb} (HTTP {status}{detail})",
                            permanent=not _transient(status))

    def find_call(self, gateway: Gateway, idempotency_key: str) -> Call | None:
        return Call("GET", f"{gateway.url}/{quote(idempotency_key, safe='')}",
                    {"Authorization": f"Bearer {gateway.token}"})

    def sighting(self, answer: httpx.Response) -> Sighting:
        if answer.status_code == 404:
            return Sighting(known=True)
        if answer.status_code != 200:
            raise self.refusal(answer)
        body = json_object(answer)
        accepted_at = None
        if isinstance(body.get("accepted_at"), str):
            try:
                accepted_at = datetime.fromisoformat(body["accepted_at"])
            except ValueError:
                accepted_at = None
            if accepted_at is not None and accepted_at.tzinfo is None:
                accepted_at = None  # a time without its zone cannot be placed
        return Sighting(known=True, message_id=_id_in(answer, "id", "the SMS gateway"),
                        accepted_at=accepted_at)


class TwilioProfile:
    name = "twilio"

    def send_call(self, gateway: Gateway, message: OutgoingMessage, to: str) -> Call:
        sender = ("MessagingServiceSid" if gateway.sender.startswith("MG") else "From",
                  gateway.sender)
        return Call("POST", f"{gateway.url}/2010-04-01/Accounts/{gateway.account}/"
                    "Messages.json", {"I-Twilio-Idempotency-Token": message.idempotency_key},
                    form={"To": to, sender[0]: sender[1], "Body": message.body,
                          "StatusCallback": f"{gateway.public_url}/v1/inbound/twilio/status"},
                    auth=(gateway.account, gateway.token))

    def message_id(self, answer: httpx.Response) -> str:
        return _id_in(answer, "sid", "Twilio")

    def refusal(self, answer: httpx.Response) -> ChannelError:
        status = answer.status_code
        code = json_object(answer).get("code")
        detail = ""
        if isinstance(code, int) and not isinstance(code, bool):
            known = TWILIO_CODES.get(code)
            detail = f", error {code}" + (f": {known}" if known else "")
        verb = "failed" if _transient(status) else "refused the message"
        return ChannelError(f"Twilio {verb} (HTTP {status}{detail})",
                            permanent=not _transient(status))

    def find_call(self, gateway: Gateway, idempotency_key: str) -> Call | None:
        return None  # Twilio cannot list messages by idempotency token

    def sighting(self, answer: httpx.Response) -> Sighting:
        return UNKNOWABLE


PROFILES: dict[str, Profile] = {"generic": GenericProfile(), "twilio": TwilioProfile()}
