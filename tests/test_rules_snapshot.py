"""A running loan keeps the rules it was handed over with: its rule pack, public holidays
and time zone rules are snapshotted at the start, so an upgraded `tzdata` or `holidays`
package or an edited pack never changes its past decisions on replay; a newer pack reaches
it only through a recorded migration."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.worker import Replayer

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.calendar import local_date
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.compliance import Verdict, packs
from duecourse.domain.policy import Channel, ContactHours
from duecourse.domain.rules import RulesMigration, RulesSnapshot
from duecourse.runtime import WORKFLOWS, sandbox_runner
from duecourse.snapshots import take_snapshot, zone_rules
from duecourse.store import tables as t
from duecourse.temporal.client import ActionRejected
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, make_loan
from tests.support.sealing import sealed
from tests.test_workflow_negotiation import STANDARD, start

SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = "+8613800138000"
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 07:30 in Kolkata


def opened(now: datetime = NOW) -> Collection:
    c, _ = Collection.begin(make_loan(now, dpd=2), STANDARD, now, case_id="case-1")
    return c


def test_a_loan_follows_the_zone_rules_it_started_with_not_the_installed_ones() -> None:
    c = opened()
    assert c.decide_contact(Channel.SMS, PHONE, NOW).verdict is Verdict.ALLOWED
    # as if the tz database at hand-over had put Shanghai at +05:30 (Kolkata's rules)
    c.adopt_rules(RulesSnapshot(pack=c.pack, zone="Asia/Shanghai",
                                zone_rules=zone_rules("Asia/Kolkata"), taken_at=NOW))
    decision = c.decide_contact(Channel.SMS, PHONE, NOW)
    assert decision.verdict is Verdict.DEFERRED
    assert decision.until == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)  # 08:00 at +05:30
    assert c.dpd(datetime(2026, 12, 1, 18, 0, tzinfo=UTC)) == \
        c.dpd(datetime(2026, 12, 1, 19, 0, tzinfo=UTC)) - 1, "the day turns at +05:30"


def test_a_loan_follows_the_holidays_it_started_with() -> None:
    c = opened()
    pack = c.pack.model_copy(update={"no_contact_on_public_holidays": True})
    today = local_date(NOW, "Asia/Shanghai")  # no public holiday in the installed calendar
    snapshot = RulesSnapshot(pack=pack, zone="Asia/Shanghai",
                             zone_rules=zone_rules("Asia/Shanghai"), holidays=[today],
                             holiday_years=(today.year, today.year + 1), taken_at=NOW)
    c.adopt_rules(snapshot)
    decision = c.decide_contact(Channel.SMS, PHONE, NOW)
    assert decision.verdict is Verdict.DEFERRED and decision.code == "holiday"


def test_a_snapshot_is_taken_from_the_installed_rules() -> None:
    snapshot = take_snapshot("US-CA", "America/Los_Angeles",
                             {"US": {"no_contact_on_public_holidays": True}}, NOW)
    assert snapshot.pack.no_contact_on_public_holidays and snapshot.pack.jurisdiction == "US"
    assert snapshot.holiday_years == (2026, 2031)
    assert datetime(2026, 12, 25).date() in snapshot.holidays
    assert snapshot.zone_rules.startswith(b"TZif")
    restored = RulesSnapshot.model_validate_json(snapshot.model_dump_json())
    assert restored == snapshot, "survives the JSON it travels in"


def test_a_snapshot_from_before_the_law_units_keeps_counting_calls_as_it_did() -> None:
    """0.2 snapshots counted calls in rolling windows and counted every dial: a loan
    handed over then keeps deciding so (its history was made so) until migrated."""
    fresh = take_snapshot("US-NY", "America/New_York", {}, NOW)
    assert fresh.pack.call_window == "consecutive_days"
    assert not fresh.pack.count_unconnected_calls
    assert RulesSnapshot.model_validate_json(fresh.model_dump_json()) == fresh
    old = fresh.model_dump(mode="json")
    for field in ("call_window", "count_unconnected_calls", "third_party_purposes"):
        old["pack"].pop(field)
    legacy = RulesSnapshot.model_validate(old)
    assert legacy.pack.call_window == "rolling" and legacy.pack.count_unconnected_calls
    converted = sealed().payload_converter.from_payloads(
        sealed().payload_converter.to_payloads([old]), [RulesSnapshot])[0]
    assert converted.pack.call_window == "rolling", "as a workflow reads it from history"


async def test_an_edited_pack_changes_neither_a_running_loan_nor_its_replay(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(7, 0))
    pack_hours_only = STANDARD.model_copy(update={"contact_hours": None})
    loan = await start(h, pack_hours_only, dpd=2)  # the first notice waits for 08:00
    await h.env.sleep(timedelta(hours=2))
    status = await h.client.status(loan.loan_id)
    assert status.contacts_sent >= 1
    history = await h.client.handle(loan.loan_id).fetch_history()
    # A deploy widens the CN hours: at 07:00 the notice would now have gone at once.
    wider = packs.CN.model_copy(update={"contact_hours": ContactHours(start=time(6),
                                                                      end=time(22))})
    monkeypatch.setitem(packs.PACKS, "CN", wider)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=sealed(),
                        workflow_runner=sandbox_runner())
    await replayer.replay_workflow(history)  # no nondeterminism: the snapshot decided
    case = (await h.rows(t.collection_cases, loan_id=loan.loan_id))[0]
    assert case["compliance"]["pack"]["contact_hours"]["start"] == "08:00:00"


async def test_a_newer_pack_reaches_a_running_loan_only_by_a_recorded_migration(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    loan = await start(h, STANDARD, dpd=2)
    before = (await h.client.status(loan.loan_id)).rule_pack
    revised = packs.CN.model_copy(update={"title": "China: revised guideline (2027)"})
    monkeypatch.setitem(packs.PACKS, "CN", revised)
    assert (await h.client.status(loan.loan_id)).rule_pack == before, "deploys do not"
    basis = await h.client.rules(loan.loan_id)
    snapshot = take_snapshot(basis.jurisdiction, basis.zone, basis.overrides,  # type: ignore[arg-type]
                             await h.env.get_current_time())
    with pytest.raises(ActionRejected, match="only ops or a supervisor"):
        await h.client.migrate_rules(loan.loan_id, RulesMigration(
            rules=snapshot, actor=AGENT, reason="agent tries"))
    ops = Actor(kind=ActorKind.OPS, id="ops-1")
    status = await h.client.migrate_rules(loan.loan_id, RulesMigration(
        rules=snapshot, actor=ops, reason="CBA guideline revision in force"))
    assert status.rule_pack == "China: revised guideline (2027)"
    migrated = [e for e in await h.rows(t.audit_events, loan_id=loan.loan_id)
                if e["kind"] == "rules_migrated"]
    assert len(migrated) == 1 and migrated[0]["actor_id"] == "ops-1"
    assert migrated[0]["data"]["details"]["previous"] == before
