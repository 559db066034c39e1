"""Provider outages and send rates (issue 13 item 7), through the real send activity,
workflow and ledger.

A provider down for minutes (answering 503 until a time on the server's clock) delays its
messages: they are retried with back-off, none is lost or accepted twice, and ops hear of
it once a message has failed repeatedly; a message whose lawful window closed, or that a
stop fact overtook, during the outage is not sent late. Each channel's sends run on their
own task queue, whose rate the Temporal server holds across every worker polling it.
"""

from __future__ import annotations

import asyncio
import time as clock
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from duecourse.activities import build_activities
from duecourse.channels import ChannelError, OutboxChannel, OutgoingMessage, Sighting
from duecourse.channels.outages import OUTAGE_ALERT_AFTER
from duecourse.channels.rate_limits import channel_queue, channel_workers
from duecourse.channels.router import ChannelRouter
from duecourse.channels.sms import sms_channel
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient, ensure_search_attributes
from duecourse.temporal.connection import connect as connect_temporal
from tests.conftest import Harness, advance_to_local, settings_for_tests
from tests.factories import daytime_zone, make_loan, payment
from tests.sms_gateways import GENERIC_TOKEN, GenericGateway, serving
from tests.support.devserver import dev_server_and_ledger
from tests.test_workflow_faults import SHANGHAI, rig
from tests.test_workflow_negotiation import STANDARD


@dataclass
class DownProvider:
    """A provider that answers 503 for a channel kind until `up_at[kind]` on the server's
    clock, then takes messages into the real outbox. Remembers every call."""

    ledger: Ledger
    up_at: dict[str, datetime]
    refused: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, list[datetime]] = field(default_factory=dict)
    queues: set[str] = field(default_factory=set)
    name: str = "down-provider"

    async def send(self, message: OutgoingMessage) -> str:
        info = activity.info()
        self.queues.add(info.task_queue)
        at = info.current_attempt_scheduled_time
        if at < self.up_at.get(message.channel, at):
            self.refused[message.idempotency_key] += 1
            raise ChannelError("provider answered 503: service unavailable")
        self.accepted.setdefault(message.idempotency_key, []).append(at)
        return await OutboxChannel(self.ledger).send(message)

    async def find(self, idempotency_key: str) -> Sighting:
        return await OutboxChannel(self.ledger).find(idempotency_key)


def at_local(now: datetime, zone: ZoneInfo, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(now.astimezone(zone).date(), time(hour, minute), tzinfo=zone)


async def outage_alerts(ledger: Ledger, loan_id: str) -> list[str]:
    return [a["subject"] for a in await ledger.rows(t.ops_alerts, loan_id=loan_id)
            if "provider failing" in a["subject"]]


# ------------------------------------------------------------------------ outages
async def test_a_provider_down_for_minutes_delays_messages_loses_none_and_tells_ops(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """Eight minutes down: ops hear of it while the SMS still waits (before, only once a
    message was given up), and the SMS goes out when the provider is back (a budget of
    five calls, about four minutes at a call a minute, gave it up: lost)."""
    now = await advance_to_local(Harness(ts_env, None, ledger, ""),  # type: ignore[arg-type]
                                 SHANGHAI, time(9, 0))
    sms_up = at_local(now, SHANGHAI, 10, 8)  # notice-sms is due at 10:00: eight minutes
    email_up = at_local(now, SHANGHAI, 10, 5) + timedelta(seconds=5)  # a blip at 10:05
    provider = DownProvider(ledger, {"sms": sms_up, "email": email_up})
    async with rig(ts_env, ledger, channel=provider) as r:
        loan = make_loan(now, dpd=1)
        await r.client.start(loan, STANDARD)
        await ts_env.sleep(timedelta(hours=1, minutes=30))
        rows = {c["step"]: c for c in await r.rows(t.contact_attempts, loan_id=loan.loan_id)}
        outbox = await r.rows(t.outbox_messages)  # one loan per ledger
        alerts = await outage_alerts(ledger, loan.loan_id)
        queue = r.client.task_queue
    sms, email = rows["notice-sms"], rows["notice-email"]
    assert sms["status"] == "sent" and sms["sent_at"] >= sms_up, "delayed, not lost"
    assert email["status"] == "sent"
    assert provider.refused[sms["idempotency_key"]] >= OUTAGE_ALERT_AFTER
    assert provider.refused[email["idempotency_key"]] < OUTAGE_ALERT_AFTER
    assert {k: len(v) for k, v in provider.accepted.items()} == {
        sms["idempotency_key"]: 1, email["idempotency_key"]: 1}, "each accepted once"
    assert Counter(m["idempotency_key"] for m in outbox) == {
        sms["idempotency_key"]: 1, email["idempotency_key"]: 1}, "one message per key"
    assert len(alerts) == 1 and "sms provider failing" in alerts[0], \
        "one alert for the message that kept failing, none for the blip"
    assert provider.queues == {channel_queue(queue, "sms"), channel_queue(queue, "email")}


async def test_a_gateway_that_rate_limits_then_fails_delays_the_sms_through_http(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """The real SMS adapter against a local gateway answering 429, 429, 503, 503 (about
    four minutes, the calls a minute apart): one message at the gateway, sent, one alert."""
    async with serving(GenericGateway(fail_next=[429, 429, 503, 503])) as gw:
        router = ChannelRouter(OutboxChannel(ledger), {"sms": sms_channel(Settings(
            sms_url=f"{gw.url}/v1/messages", sms_profile="generic", sms_token=GENERIC_TOKEN,
            sms_from="+14155550100"), ledger)})
        async with rig(ts_env, ledger, channel=router) as r:
            await advance_to_local(Harness(ts_env, r.client, ledger, ""), SHANGHAI,
                                   time(9, 0))
            loan = make_loan(await ts_env.get_current_time(), dpd=1)  # notice-sms 10:00
            await r.client.start(loan, STANDARD)
            await ts_env.sleep(timedelta(hours=1, minutes=30))
            sms = {c["step"]: c for c in await r.rows(
                t.contact_attempts, loan_id=loan.loan_id)}["notice-sms"]
            alerts = await outage_alerts(ledger, loan.loan_id)
    posts = [q for q in gw.requests if q.method == "POST"]
    assert sms["status"] == "sent" and sms["channel_attempts"] == 5
    assert len(posts) == 5 and [m.key for m in gw.messages.values()] == [
        sms["idempotency_key"]], "four refusals, one message"
    assert sms["provider_message_id"] == gw.messages[sms["idempotency_key"]].id
    assert len(alerts) == 1 and "sms provider failing" in alerts[0]


async def test_a_stop_fact_during_an_outage_means_the_message_never_goes(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """A payment in full arrives while the SMS waits out the provider's outage: the send
    is withdrawn, not delivered once the provider is back."""
    now = await advance_to_local(Harness(ts_env, None, ledger, ""),  # type: ignore[arg-type]
                                 SHANGHAI, time(9, 0))
    provider = DownProvider(ledger, {"sms": at_local(now, SHANGHAI, 10, 30)})
    async with rig(ts_env, ledger, channel=provider) as r:
        loan = make_loan(now, dpd=1)
        await r.client.start(loan, STANDARD)
        await ts_env.sleep(at_local(now, SHANGHAI, 10, 3) - now)
        assert provider.refused, "the SMS is waiting out the outage"
        await r.client.report_payment(loan.loan_id, payment("1000.00"))
        await ts_env.sleep(timedelta(hours=2))
        result = await r.client.result(loan.loan_id)
        rows = await r.rows(t.contact_attempts, loan_id=loan.loan_id)
        outbox = await r.rows(t.outbox_messages)  # one loan per ledger
    assert result.outcome == "PAID"
    assert not provider.accepted and outbox == []
    assert all(row["status"] != "sent" for row in rows)


async def test_a_message_whose_window_closes_during_an_outage_is_not_sent_late(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """Contact hours end at 21:00; the provider is down from 20:57 to 21:30. The notice is
    not sent at 21:30 when the provider is back: it is decided again and goes in the next
    morning's hours. Ops heard of the outage meanwhile."""
    now = await advance_to_local(Harness(ts_env, None, ledger, ""),  # type: ignore[arg-type]
                                 SHANGHAI, time(20, 57))
    provider = DownProvider(ledger, {"sms": at_local(now, SHANGHAI, 21, 30)})
    async with rig(ts_env, ledger, channel=provider) as r:
        loan = make_loan(now, dpd=1)  # notice-sms was due at 10:00: it goes at once, late
        await r.client.start(loan, STANDARD)
        await ts_env.sleep(timedelta(hours=12))
        await r.settle(loan.loan_id)
        rows = {c["step"]: c for c in await r.rows(t.contact_attempts, loan_id=loan.loan_id)}
        alerts = await outage_alerts(ledger, loan.loan_id)
    sms = rows["notice-sms"]
    morning = at_local(now, SHANGHAI, 8, 0) + timedelta(days=1)
    assert provider.refused[sms["idempotency_key"]] >= OUTAGE_ALERT_AFTER
    assert len(provider.accepted[sms["idempotency_key"]]) == 1
    [accepted] = provider.accepted[sms["idempotency_key"]]
    assert accepted >= morning, f"sent at {accepted.astimezone(SHANGHAI).isoformat()}"
    assert sms["status"] == "sent" and sms["sent_at"] >= morning
    assert len(alerts) == 1


# ------------------------------------------------------------------------ rate limits
async def test_each_channel_queue_gets_its_providers_rate(ts_env: WorkflowEnvironment,
                                                         ledger: Ledger) -> None:
    """The configuration the server enforces: sms at `sms_rate`, email at `email_rate`,
    the rest unlimited; a worker without the send activity serves no channel queue."""
    settings = settings_for_tests().model_copy(update={"sms_rate": 3.0, "email_rate": 7.5})
    acts = build_activities(ledger, OutboxChannel(ledger), "Acme", "400-800")
    workers = channel_workers(ts_env.client, "tq", acts, settings)
    rates = {w.config()["task_queue"]: w.config()["max_task_queue_activities_per_second"]
             for w in workers}
    assert rates == {"tq-sms": 3.0, "tq-email": 7.5, "tq-voice": None, "tq-letter": None,
                     "tq-visit": None}
    assert all([a.__name__ for a in w.config()["activities"]] == ["send_message"]
               for w in workers)
    assert channel_workers(ts_env.client, "tq", [], settings) == []


@dataclass
class Stamps:
    """A provider that takes messages into the outbox and notes when each SMS arrived."""

    ledger: Ledger
    expected: int
    sms: list[float] = field(default_factory=list)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "stamps"

    async def send(self, message: OutgoingMessage) -> str:
        if message.channel == "sms":
            self.sms.append(clock.monotonic())
            if len(self.sms) >= self.expected:
                self.all_in.set()
        return await OutboxChannel(self.ledger).send(message)

    async def find(self, idempotency_key: str) -> Sighting:
        return await OutboxChannel(self.ledger).find(idempotency_key)


async def test_the_sms_rate_holds_across_two_workers(tmp_path: Path) -> None:
    """Ten loans' notices through two workers at 2 SMS/s: the server spaces the sends
    (burst aside), however many workers poll. Without the channel queue's rate both
    workers sent at once."""
    rate, loans = 2.0, 10
    settings = settings_for_tests().model_copy(update={"sms_rate": rate})
    async with dev_server_and_ledger(tmp_path) as dev:
        await ensure_search_attributes(dev.client)
        provider = Stamps(dev.ledger, loans)
        queue = f"tq-{uuid4().hex}"
        # two connections, as two worker processes have (one client may not run two
        # workers on one queue)
        workers = [build_worker(await connect_temporal(Settings(), address=dev.server.address),
                                dev.ledger, settings, queue, activities=build_activities(
                                    dev.ledger, provider, "Acme", "400-800"))
                   for _ in range(2)]
        async with workers[0], workers[1]:
            client = CollectionClient(dev.client, queue)
            now = datetime.now(UTC)
            started = [make_loan(now, dpd=1, tz=daytime_zone(now)) for _ in range(loans)]
            await asyncio.gather(*(client.start(loan, STANDARD) for loan in started))
            await asyncio.wait_for(provider.all_in.wait(), timeout=60)
            for loan in started:
                await client.handle(loan.loan_id).terminate()
    assert len(provider.sms) == loans
    span = max(provider.sms) - min(provider.sms)
    burst = 2  # the server's token bucket may let a second send through at once
    assert span >= (loans - burst) / rate - 0.5, f"{loans} SMS within {span:.2f} s"
