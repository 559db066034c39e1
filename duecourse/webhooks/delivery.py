"""Deliver one outbound event to one webhook: POST it signed, classify the answer, record it.

The outbox dispatcher's sender (duecourse.webhooks.dispatcher). The outcome is recorded
(webhook_deliveries) before `deliver` returns; a receiver sees each event once - at least
once in the rare crash between its 2xx and our record, hence the stable
`Duecourse-Event-Id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog

from duecourse import __version__
from duecourse.domain.events import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    OutboundEvent,
    signature_header,
)
from duecourse.netguard import Pinned, Refused, Resolve, pin, system_resolve
from duecourse.store.webhooks import DeliveryStatus, Webhook, WebhookStore

log = structlog.get_logger(__name__)

RETRYABLE_4XX = frozenset({408, 429})
"""Client errors that mean "later", not "never"."""

ERROR_SNIPPET = 300  # characters of a failed answer's body kept in last_error


@dataclass(frozen=True)
class Outcome:
    """One webhook's answer: `pending` means try again later."""

    webhook_id: str
    status: DeliveryStatus
    code: int | None
    error: str | None


class WebhookSender:
    """`http_client` builds the client per delivery (tests, proxies, mTLS); without it, a
    plain client with `timeout` seconds per request and no redirects followed. The host
    is looked up once, by `resolve`, and the POST connects to an address that lookup
    returned (duecourse.netguard.pin: no DNS-rebinding window); unless the store allows
    private addresses, a webhook whose host resolves to one fails without a request.
    `deadline` bounds a whole attempt (name lookup, connect, a receiver trickling its
    answer): shorter than the dispatcher's claim, so a slow receiver is never posted to
    again while the first POST still runs."""

    def __init__(self, store: WebhookStore,
                 http_client: Callable[[], httpx.AsyncClient] | None = None,
                 timeout: float = 10.0, deadline: float = 25.0,
                 resolve: Resolve = system_resolve) -> None:
        self.store = store
        self.deadline = deadline
        self._resolve = resolve
        self._http_client = http_client or (lambda: httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            headers={"User-Agent": f"duecourse-webhooks/{__version__}"}))

    async def deliver(self, event: OutboundEvent, hook: Webhook, attempt: int,
                      last_try: bool) -> Outcome:
        """Post `event` to `hook` and record the outcome; on the `last_try` a delivery
        still pending is recorded as failed (given up)."""
        body = event.model_dump_json()
        try:
            async with asyncio.timeout(self.deadline), self._http_client() as http:
                answer = await self._post(http, hook, event, body, attempt)
        except TimeoutError:
            answer = Outcome(hook.webhook_id, "pending", None,
                             f"no answer within {self.deadline:g} s")
        status, error = answer.status, answer.error
        if status == "pending" and last_try:
            status, error = "failed", f"{error} (gave up after {attempt} attempts)"
        await self.store.record_attempt(event, hook.webhook_id, status, answer.code, error)
        (log.info if status == "delivered" else log.warning)(
            "webhook delivery", event_id=event.event_id, event_type=event.type,
            loan_id=event.loan_id, webhook_id=hook.webhook_id, status=status,
            status_code=answer.code, error=error, attempt=attempt)
        return Outcome(hook.webhook_id, status, answer.code, error)

    async def _post(self, http: httpx.AsyncClient, hook: Webhook, event: OutboundEvent,
                    body: str, attempt: int) -> Outcome:
        """POST and classify; never raises, so every attempt is counted and recorded and a
        webhook that can never work runs out of retries instead of being tried forever."""
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            EVENT_TYPE_HEADER: event.type,
            SIGNATURE_HEADER: signature_header(hook.secret, int(time.time()), body),
            "Duecourse-Attempt": str(attempt),
        }
        wid = hook.webhook_id
        try:
            target = await pin(hook.url, self.store.allow_private, self._resolve)
        except Refused as err:
            return Outcome(wid, "failed", None, f"refused: {err}")
        except OSError as err:  # DNS down or the name gone: try again later
            return Outcome(wid, "pending", None, f"DNS: {err}")
        except ValueError as err:  # no URL we could ever reach
            return Outcome(wid, "failed", None, f"bad url: {err}")
        try:
            answer = await _post_pinned(http, target, body, headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            return Outcome(wid, "failed", None, f"bad url: {err}")
        except httpx.HTTPError as err:
            detail = f": {err}" if str(err) else ""
            return Outcome(wid, "pending", None, f"{type(err).__name__}{detail}")
        code, snippet = answer
        if 200 <= code < 300:
            return Outcome(wid, "delivered", code, None)
        error = f"HTTP {code}" + (f": {snippet}" if snippet else "")
        permanent = 400 <= code < 500 and code not in RETRYABLE_4XX
        return Outcome(wid, "failed" if permanent else "pending", code, error)


async def _post_pinned(http: httpx.AsyncClient, target: Pinned, body: str,
                       headers: dict[str, str]) -> tuple[int, str]:
    """POST to the first checked address that accepts a connection (a refused connection
    sent nothing, so the next is safe to try); the status code and, for an error, the
    start of the answer."""
    headers = {**headers, "Host": target.host_header}
    for number, address in enumerate(target.addresses, 1):
        url, extensions = target.request_to(address)
        try:
            async with http.stream("POST", url, content=body.encode(), headers=headers,
                                   extensions=extensions) as response:
                code = response.status_code
                return code, "" if 200 <= code < 300 else await _read_some(response)
        except httpx.ConnectError:
            if number == len(target.addresses):
                raise
    raise AssertionError("a pinned target has at least one address")


async def _read_some(response: httpx.Response) -> str:
    """The start of an error answer, for the record; never the whole of a huge body."""
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= ERROR_SNIPPET:
                break
    except httpx.HTTPError:
        pass
    return data[:ERROR_SNIPPET].decode(errors="replace").strip()
