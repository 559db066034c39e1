"""SMS through an HTTP gateway (generic JSON or Twilio, duecourse.channels.sms_profiles).

The adapter checks the number before any request (E.164, valid per `phonenumbers`: a
number no carrier can reach is a final failure, not a retry), passes the send's
idempotency key as the provider's idempotency header so a retried attempt never sends
twice, and turns the gateway's answer into a message id or a ChannelError (4xx final,
429/5xx/no answer retried by the send activity). Nothing here logs or raises the number,
the text or the token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import phonenumbers

from duecourse import __version__
from duecourse.channels.base import UNKNOWABLE, ChannelError, OutgoingMessage, Sighting
from duecourse.channels.provider_http import setting_url
from duecourse.channels.routing import ChannelSettingError
from duecourse.channels.sms_profiles import PROFILES, Call, Gateway, Profile
from duecourse.settings import Settings
from duecourse.store.ledger import Ledger

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per request; inside the send activity's 20 s channel deadline."""
EXAMPLES = {"generic": "https://sms.example/v1/messages", "twilio": "https://api.twilio.com"}
_SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_TWILIO_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


def e164(recipient: str) -> str:
    """The recipient as E.164, or a final ChannelError that does not repeat it."""
    try:
        number = phonenumbers.parse(recipient, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ChannelError("the recipient is not a valid phone number in E.164 form "
                           "(+ and country code)", permanent=True)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class SmsChannel:
    """One gateway, one profile. A fresh HTTP client per call: a worker's channel outlives
    any one event loop's connections, and the send rate is low."""

    def __init__(self, profile: Profile, gateway: Gateway, host: str,
                 http_client: Callable[[], httpx.AsyncClient] | None = None) -> None:
        self.name = f"sms:{profile.name}:{host}"[:64]  # contact_attempts.sent_via
        self._profile = profile
        self._gateway = gateway
        self._http_client = http_client or (lambda: httpx.AsyncClient(
            timeout=TIMEOUT, follow_redirects=False,
            headers={"User-Agent": f"duecourse-sms/{__version__}"}))

    async def send(self, message: OutgoingMessage) -> str:
        call = self._profile.send_call(self._gateway, message, e164(message.recipient))
        answer = await self._request(call)
        if not answer.is_success:
            raise self._profile.refusal(answer)
        return self._profile.message_id(answer)

    async def find(self, idempotency_key: str) -> Sighting:
        call = self._profile.find_call(self._gateway, idempotency_key)
        if call is None:
            return UNKNOWABLE  # the provider has no lookup by key
        return self._profile.sighting(await self._request(call))

    async def _request(self, call: Call) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": call.headers}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.form is not None:
            kwargs["data"] = call.form
        if call.auth is not None:
            kwargs["auth"] = call.auth
        try:
            async with self._http_client() as http:
                return await http.request(call.method, call.url, **kwargs)
        except httpx.HTTPError as err:  # no answer: it may or may not have been taken
            raise ChannelError(f"the SMS gateway did not answer ({type(err).__name__})") \
                from None


def sms_channel(settings: Settings, ledger: Ledger) -> SmsChannel:
    """The adapter DUECOURSE_SMS_* describe, or a ChannelSettingError naming the setting
    to fix (never quoting the token)."""
    del ledger  # the gateway keeps its own record under the key
    profile = PROFILES[settings.sms_profile]
    url = httpx.URL(setting_url(settings.sms_url or "", "DUECOURSE_SMS_URL",
                                EXAMPLES[profile.name], "DUECOURSE_SMS_TOKEN"))
    base = str(url).rstrip("/")
    if profile.name == "twilio" and "/2010-04-01" in url.path:
        raise ChannelSettingError(
            "DUECOURSE_SMS_URL for the twilio profile is the API base, such as "
            "https://api.twilio.com, without the Messages path")
    token = settings.sms_token.get_secret_value() if settings.sms_token else ""
    if not token:
        raise ChannelSettingError(
            "DUECOURSE_SMS_TOKEN is required with DUECOURSE_SMS_URL: the gateway's bearer "
            "token (generic) or the account's auth token (twilio)")
    account = (settings.sms_account or "").strip()
    if profile.name == "twilio" and not _TWILIO_SID.fullmatch(account):
        raise ChannelSettingError(
            "DUECOURSE_SMS_ACCOUNT must be the Twilio account SID (AC followed by 32 hex "
            "digits) with DUECOURSE_SMS_PROFILE=twilio")
    if profile.name == "generic" and account:
        raise ChannelSettingError(
            "DUECOURSE_SMS_ACCOUNT is only for DUECOURSE_SMS_PROFILE=twilio; unset it for "
            "the generic profile")
    sender = (settings.sms_from or "").strip()
    if not _sender_ok(sender, twilio=profile.name == "twilio"):
        raise ChannelSettingError(
            "DUECOURSE_SMS_FROM must be the sender number in E.164 form (e.g. "
            "+14155550100) or an alphanumeric sender id of up to 11 characters"
            + (" or a Twilio messaging service SID (MG...)" if profile.name == "twilio"
               else ""))
    public = setting_url(settings.public_url, "DUECOURSE_PUBLIC_URL",
                         "https://collections.lender.example", "DUECOURSE_SMS_TOKEN",
                         secure=False).rstrip("/")
    gateway = Gateway(url=base, token=token, sender=sender, public_url=public,
                      account=account)
    return SmsChannel(profile, gateway, url.host)


def _sender_ok(sender: str, *, twilio: bool) -> bool:
    if twilio and _SERVICE_SID.fullmatch(sender):
        return True
    if sender.startswith("+"):
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse(sender, None))
        except phonenumbers.NumberParseException:
            return False
    return bool(_SENDER_ID.fullmatch(sender))
