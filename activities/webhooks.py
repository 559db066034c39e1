"""`deliver_event`: POST one outbound event, signed, to every webhook subscribed to it.

Each webhook's outcome is recorded before the activity returns or raises; a retry (the
activity raises `DeliveryFailed` while any webhook can still succeed) skips webhooks that
already have a final status, so a receiver sees each event once - at least once in the
rare crash between its 2xx and our record, hence the stable `Duecourse-Event-Id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse import __version__
from duecourse.domain.events import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    DeliveryReport,
    OutboundEvent,
    signature_header,
)
from duecourse.netguard import resolved_problem
from duecourse.store.owners import LoanOwners
from duecourse.store.webhooks import FINAL, DeliveryStatus, Webhook, WebhookStore
from duecourse.temporal.contracts import DELIVER_EVENT

log = structlog.get_logger(__name__)

RETRYABLE_4XX = frozenset({408, 429})
"""Client errors that mean "later", not "never"."""

ERROR_SNIPPET = 300  # characters of a failed answer's body kept in last_error


@dataclass(frozen=True)
class _Outcome:
    webhook_id: str
    status: DeliveryStatus
    code: int | None
    error: str | None


class WebhookActivities:
    """`http_client` builds the client per run (tests, proxies, mTLS); without it, a plain
    client with `timeout` seconds per request and no redirects followed. Unless the store
    allows private addresses, a webhook whose host resolves to one fails without a request
    (duecourse.netguard)."""

    def __init__(self, store: WebhookStore,
                 http_client: Callable[[], httpx.AsyncClient] | None = None,
                 timeout: float = 10.0) -> None:
        self._store = store
        self._http_client = http_client or (lambda: httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            headers={"User-Agent": f"duecourse-webhooks/{__version__}"}))

    @activity.defn(name=DELIVER_EVENT)
    async def deliver_event(self, event: OutboundEvent) -> DeliveryReport:
        info = activity.info()
        policy = info.retry_policy
        last_try = bool(policy and policy.maximum_attempts
                        and info.attempt >= policy.maximum_attempts)
        owner = await LoanOwners(self._store.engine).owner_of(event.loan_id)
        hooks = await self._store.active_for(event.type, owner)
        done = {d.webhook_id for d in await self._store.deliveries(event_id=event.event_id)
                if d.status in FINAL}
        report = DeliveryReport(event_id=event.event_id,
                                skipped=[h.webhook_id for h in hooks if h.webhook_id in done])
        todo = [h for h in hooks if h.webhook_id not in done]
        if todo:
            body = event.model_dump_json()
            async with self._http_client() as http:
                outcomes = await asyncio.gather(
                    *(self._post(http, hook, event, body, info.attempt) for hook in todo))
            for o in outcomes:
                status, error = o.status, o.error
                if status == "pending" and last_try:
                    status, error = "failed", f"{error} (gave up after {info.attempt} attempts)"
                await self._store.record_attempt(event, o.webhook_id, status, o.code, error)
                if status == "delivered":
                    report.delivered.append(o.webhook_id)
                elif status == "failed":
                    report.failed.append(o.webhook_id)
                (log.info if status == "delivered" else log.warning)(
                    "webhook delivery", event_id=event.event_id, event_type=event.type,
                    loan_id=event.loan_id, webhook_id=o.webhook_id, status=status,
                    status_code=o.code, error=error, attempt=info.attempt)
            pending = [o for o in outcomes if o.status == "pending"]
            if pending and not last_try:
                raise ApplicationError(
                    f"{len(pending)} webhook(s) not yet delivered: " + "; ".join(
                        f"{o.webhook_id}: {o.error}" for o in pending),
                    type="DeliveryFailed")
        return report

    async def _post(self, http: httpx.AsyncClient, hook: Webhook, event: OutboundEvent,
                    body: str, attempt: int) -> _Outcome:
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
        if not self._store.allow_private:
            try:
                if problem := await resolved_problem(hook.url):
                    return _Outcome(wid, "failed", None, f"refused: {problem}")
            except OSError as err:  # DNS down or the name gone: try again later
                return _Outcome(wid, "pending", None, f"DNS: {err}")
            except ValueError as err:  # no URL we could ever reach
                return _Outcome(wid, "failed", None, f"bad url: {err}")
        try:
            async with http.stream("POST", hook.url, content=body.encode(),
                                   headers=headers) as response:
                code = response.status_code
                if 200 <= code < 300:
                    return _Outcome(wid, "delivered", code, None)
                snippet = await _read_some(response)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            return _Outcome(wid, "failed", None, f"bad url: {err}")
        except httpx.HTTPError as err:
            detail = f": {err}" if str(err) else ""
            return _Outcome(wid, "pending", None, f"{type(err).__name__}{detail}")
        error = f"HTTP {code}" + (f": {snippet}" if snippet else "")
        permanent = 400 <= code < 500 and code not in RETRYABLE_4XX
        return _Outcome(wid, "failed" if permanent else "pending", code, error)


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
