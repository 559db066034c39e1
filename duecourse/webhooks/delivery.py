"""Deliver one outbound event to webhooks: POST it signed, classify the answer, record it.

The one implementation behind both the outbox dispatcher and the `deliver_event` activity
of runs from 0.3. Each webhook's outcome is recorded (webhook_deliveries) before `deliver`
returns; a receiver sees each event once - at least once in the rare crash between its 2xx
and our record, hence the stable `Duecourse-Event-Id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
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
from duecourse.netguard import resolved_problem
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
    plain client with `timeout` seconds per request and no redirects followed. Unless the
    store allows private addresses, a webhook whose host resolves to one fails without a
    request (duecourse.netguard)."""

    def __init__(self, store: WebhookStore,
                 http_client: Callable[[], httpx.AsyncClient] | None = None,
                 timeout: float = 10.0) -> None:
        self.store = store
        self._http_client = http_client or (lambda: httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            headers={"User-Agent": f"duecourse-webhooks/{__version__}"}))

    async def deliver(self, event: OutboundEvent, hooks: Sequence[Webhook], attempt: int,
                      last_try: bool) -> list[Outcome]:
        """Post `event` to `hooks` at once and record each outcome; on the `last_try` a
        webhook still pending is recorded as failed (given up)."""
        if not hooks:
            return []
        body = event.model_dump_json()
        async with self._http_client() as http:
            answers = await asyncio.gather(
                *(self._post(http, hook, event, body, attempt) for hook in hooks))
        outcomes = []
        for o in answers:
            status, error = o.status, o.error
            if status == "pending" and last_try:
                status, error = "failed", f"{error} (gave up after {attempt} attempts)"
            await self.store.record_attempt(event, o.webhook_id, status, o.code, error)
            (log.info if status == "delivered" else log.warning)(
                "webhook delivery", event_id=event.event_id, event_type=event.type,
                loan_id=event.loan_id, webhook_id=o.webhook_id, status=status,
                status_code=o.code, error=error, attempt=attempt)
            outcomes.append(Outcome(o.webhook_id, status, o.code, error))
        return outcomes

    async def _post(self, http: httpx.AsyncClient, hook: Webhook, event: OutboundEvent,
                    body: str, attempt: int) -> Outcome:
        """POST and classify; never raises, so one bad webhook cannot hide another's
        outcome."""
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            EVENT_TYPE_HEADER: event.type,
            SIGNATURE_HEADER: signature_header(hook.secret, int(time.time()), body),
            "Duecourse-Attempt": str(attempt),
        }
        wid = hook.webhook_id
        if not self.store.allow_private:
            try:
                if problem := await resolved_problem(hook.url):
                    return Outcome(wid, "failed", None, f"refused: {problem}")
            except OSError as err:  # DNS down or the name gone: try again later
                return Outcome(wid, "pending", None, f"DNS: {err}")
            except ValueError as err:  # no URL we could ever reach
                return Outcome(wid, "failed", None, f"bad url: {err}")
        try:
            async with http.stream("POST", hook.url, content=body.encode(),
                                   headers=headers) as response:
                code = response.status_code
                if 200 <= code < 300:
                    return Outcome(wid, "delivered", code, None)
                snippet = await _read_some(response)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            return Outcome(wid, "failed", None, f"bad url: {err}")
        except httpx.HTTPError as err:
            detail = f": {err}" if str(err) else ""
            return Outcome(wid, "pending", None, f"{type(err).__name__}{detail}")
        error = f"HTTP {code}" + (f": {snippet}" if snippet else "")
        permanent = 400 <= code < 500 and code not in RETRYABLE_4XX
        return Outcome(wid, "failed" if permanent else "pending", code, error)


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
