"""Automated calls through a dialer's HTTP API (DUECOURSE_VOICE_URL, DUECOURSE_VOICE_TOKEN).

The contract (a generic dialer; one adapter, no provider profiles):

- place: `POST {url}/calls` with `Authorization: Bearer <token>`, `Idempotency-Key: <key>`
  and JSON `{"to", "idempotency_key", "script", "language", "decision", "result_callback"}`:
  `script` is the rendered call script, `decision` the may-contact decision the call was
  cleared by (verdict, code, rule, valid_until - the dialer must not dial after it), and
  the dialer posts the call's result to `result_callback` (`/v1/inbound/dialer/result`,
  signed with DUECOURSE_INBOUND_SECRET, `{"call_id", "result", "recording"?, "agent"?,
  "idempotency_key"?}`; echoing the key lets a result that overtakes the POST's answer
  match, else it is refused 409 to be posted again). 200/201/202 with
  `{"id": "<call id>"}`; the same key again answers with the same call and dials nothing.
- look up: `GET {url}/calls/{key}` (percent-encoded): 200 `{"id", "accepted_at"?}` when a
  call was taken under the key, 404 when none was.
- errors: 408, 409, 425, 429 and 5xx are retried by the send activity, any other 4xx is
  final; only a short `{"error": "<code>"}` from the body is kept, never free text.

Nothing here logs or raises the number, the script or the token.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from duecourse import __version__
from duecourse.channels.base import ChannelError, OutgoingMessage, Sighting
from duecourse.channels.provider_http import json_object, setting_url
from duecourse.channels.routing import ChannelSettingError
from duecourse.channels.sms import e164
from duecourse.settings import Settings
from duecourse.store.ledger import Ledger

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per request; inside the send activity's 20 s channel deadline."""
RESULT_PATH = "/v1/inbound/dialer/result"
TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


class DialerChannel:
    """One dialer. A fresh HTTP client per call: the channel outlives any one event loop."""

    def __init__(self, url: str, token: str, result_callback: str) -> None:
        self.name = f"dialer:{httpx.URL(url).host}"[:64]  # contact_attempts.sent_via
        self._url, self._token, self._callback = url.rstrip("/"), token, result_callback

    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token}",
                   "User-Agent": f"duecourse-dialer/{__version__}"}
        return {**headers, "Idempotency-Key": key} if key else headers

    async def send(self, message: OutgoingMessage) -> str:
        if message.decision is None or message.decision.get("verdict") != "allowed":
            raise ChannelError("a call goes to the dialer only with the decision that "
                               "allowed it", permanent=True)
        body = {"to": e164(message.recipient), "idempotency_key": message.idempotency_key,
                "script": message.body, "language": message.language,
                "decision": message.decision, "result_callback": self._callback}
        answer = await self._request("POST", f"{self._url}/calls",
                                     self._headers(message.idempotency_key), body)
        if not answer.is_success:
            raise _refusal(answer)
        call_id = json_object(answer).get("id")
        if not isinstance(call_id, str) or not call_id:
            # it may have taken the call: transient, the retry under the key gets its id
            raise ChannelError(f"the dialer answered {answer.status_code} without a call id")
        return call_id

    async def find(self, idempotency_key: str) -> Sighting:
        answer = await self._request(
            "GET", f"{self._url}/calls/{quote(idempotency_key, safe='')}", self._headers())
        if answer.status_code == 404:
            return Sighting(known=True)  # no call under that key
        if not answer.is_success:
            raise _refusal(answer)
        body = json_object(answer)
        call_id, at = body.get("id"), body.get("accepted_at")
        if not isinstance(call_id, str) or not call_id:
            raise ChannelError(f"the dialer answered {answer.status_code} without a call id")
        return Sighting(known=True, message_id=call_id, accepted_at=_when(at))

    async def _request(self, method: str, url: str, headers: dict[str, str],
                       body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
                return await http.request(method, url, headers=headers, json=body)
        except httpx.HTTPError as err:  # no answer: it may or may not have been taken
            raise ChannelError(f"the dialer did not answer ({type(err).__name__})") from None


def _refusal(answer: httpx.Response) -> ChannelError:
    status = answer.status_code
    code = json_object(answer).get("error")
    why = f" ({code})" if isinstance(code, str) and _CODE.fullmatch(code) else ""
    final = 400 <= status < 500 and status not in TRANSIENT_4XX
    return ChannelError(f"the dialer refused the call: {status}{why}", permanent=final)


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def dialer_channel(settings: Settings, ledger: Ledger) -> DialerChannel:
    """The adapter DUECOURSE_VOICE_* describe, or a ChannelSettingError naming the setting
    to fix (never quoting the token)."""
    del ledger  # the dialer keeps its own record under the key
    url = setting_url(settings.voice_url or "", "DUECOURSE_VOICE_URL",
                      "https://dialer.example/v1", "DUECOURSE_VOICE_TOKEN")
    token = settings.voice_token.get_secret_value().strip() if settings.voice_token else ""
    if not token:
        raise ChannelSettingError("DUECOURSE_VOICE_TOKEN is required with "
                                  "DUECOURSE_VOICE_URL: the dialer's bearer token")
    public = setting_url(settings.public_url, "DUECOURSE_PUBLIC_URL",
                         "https://collections.lender.example", "DUECOURSE_VOICE_TOKEN",
                         secure=False)
    return DialerChannel(url, token, public.rstrip("/") + RESULT_PATH)


