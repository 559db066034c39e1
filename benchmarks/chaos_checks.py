"""The checks of `benchmarks/chaos.py`: what must never happen, counted from the ledger.

Every check reads PostgreSQL directly (never the workers' view) plus, for lost loans and
the status check, Temporal itself. A failing check lists the offending loans and rows,
with the Temporal history of the first ones when that tells why (when a send was
scheduled, how many attempts it took, which faults it lived through; read in
`chaos_diagnosis.py`).

Definitions, so a count means one thing:
- a *delivered message* is an outbox row (the embedded channel; referral packs to the
  legal partner excepted), or an attempt recorded `sent` on another channel; an agent's
  own contact (`made_by_person`) is a contact too. Its visit and step come from its key
  `<case_id>:contact:<visit>:<step>`; it was delivered when the channel took it: the
  outbox row's `created_at`, else `sent_at` where the schema has it, else `attempted_at`
  (a row that was claimed, cancelled or expired never reached the borrower);
- every outbox row must belong to exactly one contact attempt, recorded `sent`;
- a *stop* is the close of the case (`stage_transitions` with an outcome) or a stop fact
  in `audit_events`: `dispute_opened` (until `dispute_verified`; the validation notice is
  allowed meanwhile, as the rules say), `cease_communication`, `attorney_represents`,
  `opted_out` (that channel, until `opted_in`), `hold_started` (until `hold_ended` or
  its end), `bankruptcy`, `deceased`; each from its recorded `occurred_at`, which is the
  workflow's time of handling the signal (the same instant the rules engine uses);
- a delivery after a stop fails the check, except one whose send had its workflow's last
  word before the stop and reached the channel within a second of it (it was already on
  its way: listed in the notes);
- a skipped step is a `contact_skipped` event whose detail says "superseded"; it is a
  failure unless the policy step is `supersedable` (read with getattr: False where the
  field does not exist), and a loan whose first reminder step was skipped fails whatever
  the field says.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from chaos_diagnosis import diagnose_late, diagnose_skips
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.service import RPCError

from duecourse.audit import run_audit
from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import ContactStep, Policy
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.client import CollectionClient

SHOWN = 8  # offending rows listed per check
STOP_KINDS = ("dispute_opened", "dispute_verified", "cease_communication",
              "attorney_represents", "opted_out", "opted_in", "hold_started", "hold_ended",
              "bankruptcy", "deceased")
CONTACT_KEY = re.compile(r"^(?P<case>[^:]+):contact:(?P<visit>\d+):(?P<step>.+)$")


@dataclass
class FaultWindow:
    """A fault as it happened, in timeline seconds."""

    kind: str
    label: str
    start: float
    end: float | None = None


@dataclass
class CheckResult:
    name: str
    count: int
    details: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.count == 0


@dataclass
class Report:
    checks: list[CheckResult]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def render(self) -> str:
        width = max(len(c.name) for c in self.checks) + 2
        lines = ["", "counts"]
        lines += [f"  {c.name:.<{width}} {c.count:>5}  {'ok' if c.ok else 'FAIL'}"
                  for c in self.checks]
        failed = [c for c in self.checks if not c.ok]
        for c in failed:
            lines += ["", f"{c.name}: {c.count}"]
            lines += [f"  - {d}" for d in c.details[:SHOWN]]
            if len(c.details) > SHOWN:
                lines.append(f"  ... and {len(c.details) - SHOWN} more")
            lines += [f"  diagnosis: {d}" for d in c.diagnosis]
        if self.notes:
            lines += ["", "notes"] + [f"  - {n}" for n in self.notes]
        verdict = "PASS: every check held" if self.ok else \
            f"FAIL: {len(failed)} of {len(self.checks)} checks failed"
        return "\n".join([*lines, "", verdict])


@dataclass
class Snapshot:
    """The ledger tables the checks read, as plain rows."""

    loans: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    events: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


async def snapshot(engine: AsyncEngine) -> Snapshot:
    tables = (t.loans, t.collection_cases, t.stage_transitions, t.contact_attempts,
              t.payments, t.audit_events, t.outbox_messages, t.documents,
              t.compliance_decisions)
    rows: list[list[dict[str, Any]]] = []
    async with engine.connect() as conn:
        for table in tables:
            query = select(table)
            if "id" in table.c:
                query = query.order_by(table.c.id)
            rows.append([dict(r) for r in (await conn.execute(query)).mappings()])
    return Snapshot(*rows)


# ----------------------------------------------------------------------------- Temporal
async def query_statuses(cc: CollectionClient,
                         loan_ids: Sequence[str]) -> dict[str, CollectionStatus | str]:
    """The `status` query of every loan (workers must be running), or why it failed."""
    gate = asyncio.Semaphore(8)

    async def one(loan_id: str) -> CollectionStatus | str:
        async with gate:
            for attempt in range(3):
                try:
                    return await asyncio.wait_for(cc.status(loan_id), 20)
                except Exception as err:  # report any failure as a finding, not a crash
                    if attempt == 2:
                        return f"status query failed: {err.__class__.__name__}: {err}"[:200]
                    await asyncio.sleep(2)
        return "unreachable"  # pragma: no cover

    results = await asyncio.gather(*(one(i) for i in loan_ids))
    return dict(zip(loan_ids, results, strict=True))


async def describe_all(cc: CollectionClient, loan_ids: Sequence[str]) -> dict[str, str]:
    """Each loan's workflow status name (RUNNING, COMPLETED, FAILED, ...) or `missing`."""
    out: dict[str, str] = {}
    for loan_id in loan_ids:
        try:
            desc = await asyncio.wait_for(cc.handle(loan_id).describe(), 15)
            out[loan_id] = desc.status.name if desc.status else "UNKNOWN"
        except RPCError as err:
            out[loan_id] = "missing" if "not found" in err.message.lower() else \
                f"describe failed: {err.message[:100]}"
        except TimeoutError:
            out[loan_id] = "describe timed out"
    return out


# ----------------------------------------------------------------------------- checks
@dataclass
class Context:
    """What the checks share: the ledger, the plan, and how to say when something was."""

    snap: Snapshot
    policy: Policy
    loans: list[LoanIntake]
    faults: list[FaultWindow]
    offset: Callable[[datetime], float]
    cases_by_loan: dict[str, list[dict[str, Any]]]
    notes: list[str] = field(default_factory=list)

    def at(self, moment: datetime | None) -> str:
        if moment is None:
            return "?"
        s = self.offset(moment)
        return f"+{int(s // 60):02d}:{s % 60:04.1f}"

    def faults_between(self, start: datetime, end: datetime) -> list[str]:
        a, b = self.offset(start), self.offset(end)
        return sorted({f.label for f in self.faults
                       if f.start <= b and (f.end is None or f.end >= a)})


def check_lost_loans(ctx: Context, descriptions: dict[str, str]) -> CheckResult:
    result = CheckResult("lost loans", 0)
    for loan in ctx.loans:
        problems = []
        status = descriptions.get(loan.loan_id, "missing")
        if status not in ("RUNNING", "COMPLETED"):
            problems.append(f"workflow {status}")
        cases = ctx.cases_by_loan.get(loan.loan_id, [])
        if not cases:
            problems.append("no collection_cases row")
        elif len(cases) > 1:
            problems.append(f"{len(cases)} collection cases (a second hand-over?)")
        if problems:
            result.count += 1
            result.details.append(f"{loan.loan_id}: {'; '.join(problems)}")
    return result


def check_lost_payments(ctx: Context, reported: dict[str, list[PaymentReport]],
                        results: dict[str, list[str]]) -> CheckResult:
    """Every payment the platform reported (and the server accepted) is in `payments`; a
    loan whose reported payments cover its balance is closed as PAID."""
    result = CheckResult("lost payments (accepted, not in the ledger)", 0)
    recorded = {(p["loan_id"], p["reference"]) for p in ctx.snap.payments}
    for loan in ctx.loans:
        reports = reported.get(loan.loan_id, [])
        accepted = [r for r in reports if "accepted" in results.get(r.reference, [])]
        for report in accepted:
            if (loan.loan_id, report.reference) not in recorded:
                result.count += 1
                result.details.append(f"{loan.loan_id}: payment {report.reference} "
                                      f"({report.amount}) accepted by Temporal, not recorded")
        total = sum((r.amount.amount for r in accepted), start=Decimal(0))
        cases = ctx.cases_by_loan.get(loan.loan_id, [])
        if accepted and total >= loan.outstanding and not any(
                c["outcome"] == "PAID" for c in cases):
            result.count += 1
            outcome = cases[-1]["outcome"] if cases else "no case"
            result.details.append(f"{loan.loan_id}: paid in full ({total}) but the case is "
                                  f"{outcome or 'open'}")
    return result


@dataclass
class Delivery:
    """A message the channel took (an outbox row), or a contact an agent made."""

    loan_id: str
    case_id: str
    key: str
    step: str
    channel: str
    purpose: str
    at: datetime
    attempt: dict[str, Any] | None  # its contact_attempts row, if any


def deliveries(snap: Snapshot) -> list[Delivery]:
    """What actually reached (or was done to) borrowers: every outbox row except referral
    packs (they go to the legal partner), plus attempts sent on another channel and
    agents' own contacts. Timed by the channel's acceptance: the outbox row's
    `created_at`, else `sent_at` where the schema has it, else `attempted_at`."""
    attempts = {c["idempotency_key"]: c for c in snap.contacts}
    referrals = {d["idempotency_key"] for d in snap.documents if d["kind"] == "referral_pack"}
    case_loan = {c["case_id"]: c["loan_id"] for c in snap.cases}
    out: list[Delivery] = []
    for row in snap.outbox:
        key = row["idempotency_key"]
        if key in referrals:
            continue
        attempt = attempts.get(key)
        m = CONTACT_KEY.match(key)
        case_id = attempt["case_id"] if attempt else key.split(":", 1)[0]
        out.append(Delivery(
            loan_id=case_loan.get(case_id, "?"), case_id=case_id, key=key,
            step=attempt["step"] if attempt else (m["step"] if m else key),
            channel=row["channel"], purpose=attempt["purpose"] if attempt else "collection",
            at=row["created_at"], attempt=attempt))
    in_outbox = {o["idempotency_key"] for o in snap.outbox}
    for c in snap.contacts:
        if c["status"] == "made_by_person" or (c["status"] == "sent" and
                                                c["idempotency_key"] not in in_outbox):
            out.append(Delivery(c["loan_id"], c["case_id"], c["idempotency_key"], c["step"],
                                c["channel"], c["purpose"],
                                c.get("sent_at") or c["attempted_at"], c))
    return out


def _visit_step(d: Delivery) -> tuple[str, str]:
    m = CONTACT_KEY.match(d.key)
    return (m["visit"], m["step"]) if m else ("?", d.step)


def check_duplicate_messages(ctx: Context) -> CheckResult:
    """More than one message delivered for the same loan, step and stage visit."""
    result = CheckResult("duplicate messages (loan, step, visit)", 0)
    groups: dict[tuple[str, str, str], list[Delivery]] = defaultdict(list)
    for d in deliveries(ctx.snap):
        if d.attempt is None or d.attempt["status"] != "made_by_person":
            groups[(d.loan_id, *_visit_step(d))].append(d)
    for (loan_id, visit, step), rows in sorted(groups.items()):
        if len(rows) > 1:
            result.count += len(rows) - 1
            result.details.append(
                f"{loan_id}: {step} of visit {visit} delivered {len(rows)} times, at "
                + ", ".join(ctx.at(r.at) for r in rows)
                + " (cases " + ", ".join(r.case_id[:8] for r in rows) + ")")
    return result


def check_outbox(ctx: Context) -> CheckResult:
    """Each outbox message belongs to exactly one contact attempt, recorded as sent (a
    referral pack to its document); each attempt recorded as sent has its message."""
    result = CheckResult("outbox messages not matching one sent attempt", 0)
    attempts = {c["idempotency_key"]: c for c in ctx.snap.contacts}
    referrals = {d["idempotency_key"] for d in ctx.snap.documents
                 if d["kind"] == "referral_pack"}
    case_loan = {c["case_id"]: c["loan_id"] for c in ctx.snap.cases}
    for row in ctx.snap.outbox:
        key = row["idempotency_key"]
        attempt = attempts.get(key)
        if key in referrals or (attempt is not None and attempt["status"] == "sent"):
            continue
        result.count += 1
        loan = case_loan.get(key.split(":", 1)[0], "?")
        m = CONTACT_KEY.match(key)
        what = f"{m['step']} of visit {m['visit']}" if m else key
        state = f"its attempt is {attempt['status']!r}" if attempt else "no contact attempt"
        result.details.append(f"{loan}: outbox message {what} ({row['channel']}, "
                              f"{ctx.at(row['created_at'])}): {state}")
    in_outbox = {o["idempotency_key"] for o in ctx.snap.outbox}
    for c in ctx.snap.contacts:
        if c["status"] == "sent" and c["idempotency_key"] not in in_outbox:
            result.count += 1
            result.details.append(f"{c['loan_id']}: {c['step']} recorded as sent at "
                                  f"{ctx.at(c['attempted_at'])}, no outbox message")
    return result


def check_duplicate_payments(ctx: Context) -> CheckResult:
    result = CheckResult("duplicate payments / over-applied", 0)
    refs = Counter((p["loan_id"], p["reference"]) for p in ctx.snap.payments)
    for (loan_id, reference), n in sorted(refs.items()):
        if n > 1:
            result.count += n - 1
            result.details.append(f"{loan_id}: payment {reference} recorded {n} times")
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for p in ctx.snap.payments:
        applied[p["case_id"]] += Decimal(p["applied"])
    for case in ctx.snap.cases:
        total = applied.get(case["case_id"], Decimal(0))
        if total > Decimal(case["outstanding_at_open"]):
            result.count += 1
            result.details.append(f"{case['loan_id']}: {total} applied to a balance of "
                                  f"{case['outstanding_at_open']} {case['currency']}")
    return result


@dataclass
class Stop:
    kind: str
    start: datetime
    end: datetime | None
    channel: str | None = None  # opt-outs stop one channel only

    def covers(self, channel: str, purpose: str, at: datetime) -> bool:
        if self.channel is not None and channel != self.channel:
            return False
        if self.kind == "dispute_opened" and purpose == "validation_notice":
            return False  # the verification itself may be sent during a dispute
        return at > self.start and (self.end is None or at < self.end)


def stops_by_case(snap: Snapshot) -> dict[str, list[Stop]]:
    stops: dict[str, list[Stop]] = defaultdict(list)
    for row in snap.transitions:
        if row["outcome"]:
            stops[row["case_id"]].append(Stop(f"closed {row['outcome']}",
                                              row["occurred_at"], None))
    events = sorted((e for e in snap.events if e["kind"] in STOP_KINDS),
                    key=lambda e: (e["occurred_at"], e["id"]))
    for e in events:
        case, at, kind = e["case_id"], e["occurred_at"], e["kind"]
        details = (e["data"] or {}).get("details") or {}
        open_ = [s for s in stops[case] if s.end is None]
        if kind == "dispute_verified":
            for s in open_:
                if s.kind == "dispute_opened":
                    s.end = at
        elif kind == "opted_in":
            for s in open_:
                if s.kind == "opted_out" and s.channel == details.get("channel"):
                    s.end = at
        elif kind == "hold_ended":
            for s in open_:
                if s.kind == "hold_started":
                    s.end = at
        elif kind == "opted_out":
            stops[case].append(Stop(kind, at, None, details.get("channel")))
        elif kind == "hold_started":
            end = details.get("end")
            stops[case].append(Stop(kind, at, datetime.fromisoformat(end) if end else None))
        else:
            stops[case].append(Stop(kind, at, None))
    return stops


@dataclass
class LateContact:
    delivery: Delivery
    stop: Stop


IN_FLIGHT = timedelta(seconds=1)
"""A send whose last word from its workflow came before the stop and that reached the
channel within this long after it was already on its way when the stop arrived: no system
can recall a call in progress. Listed in the notes; anything later is a failure."""


def check_contacts_after_stop(ctx: Context) -> tuple[CheckResult, list[LateContact]]:
    result = CheckResult("contacts after a full payment or a stop fact", 0)
    stops = stops_by_case(ctx.snap)
    late: list[LateContact] = []
    for d in deliveries(ctx.snap):
        for stop in stops.get(d.case_id, []):
            if stop.covers(d.channel, d.purpose, d.at):
                fenced = (d.attempt or {}).get("fenced_at")
                if fenced is not None and fenced <= stop.start and \
                        d.at - stop.start <= IN_FLIGHT:
                    ctx.notes.append(
                        f"{d.loan_id}: {d.step} ({d.channel}) was on its way when {stop.kind} "
                        f"arrived: last check {ctx.at(fenced)}, stop {ctx.at(stop.start)}, "
                        f"delivered {ctx.at(d.at)}")
                    break
                late.append(LateContact(d, stop))
                break
    late.sort(key=lambda x: (x.delivery.loan_id, x.delivery.at))
    result.count = len(late)
    for item in late:
        d, stop = item.delivery, item.stop
        what = stop.kind + (f" ({stop.channel})" if stop.channel else "")
        result.details.append(
            f"{d.loan_id}: {d.step} ({d.channel}) delivered {ctx.at(d.at)}, "
            f"{(d.at - stop.start).total_seconds():.1f} s after {what} at "
            f"{ctx.at(stop.start)}; faults around it: "
            + (", ".join(ctx.faults_between(stop.start, d.at)) or "none"))
    return result, late


def reported_but_unrecorded(ctx: Context, loans: list[LoanIntake],
                            actions: Sequence[Any]) -> list[str]:
    """Contacts delivered after the platform's report of a stop was accepted by Temporal
    but before the workflow recorded it (when its worker handled the signal). The check
    above judges by recorded times, as the rules engine does; these are listed apart so
    a lag between report and record stays visible."""
    stops = stops_by_case(ctx.snap)
    case_of = {c["loan_id"]: c["case_id"] for c in ctx.snap.cases}
    owed = {loan.loan_id: loan.outstanding for loan in loans}
    paid: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    reported: list[tuple[str, str, datetime, str | None]] = []  # loan, stop kind, at, channel
    for a in sorted((a for a in actions if a.result == "accepted" and a.landed_wall),
                    key=lambda a: a.landed_wall):
        if a.kind == "pay" and a.payload.reference not in seen:
            seen.add(a.payload.reference)
            before = paid[a.loan_id]
            paid[a.loan_id] += a.payload.amount.amount
            if before < owed[a.loan_id] <= paid[a.loan_id]:
                reported.append((a.loan_id, "closed PAID", a.landed_wall, None))
        elif a.kind in ("cease", "dispute_opened"):
            kind = "cease_communication" if a.kind == "cease" else "dispute_opened"
            reported.append((a.loan_id, kind, a.landed_wall, None))
        elif a.kind == "opt_out_sms":
            reported.append((a.loan_id, "opted_out", a.landed_wall, "sms"))
    found = []
    by_case = defaultdict(list)
    for d in deliveries(ctx.snap):
        by_case[d.case_id].append(d)
    for loan_id, kind, at, channel in reported:
        case_id = case_of.get(loan_id)
        recorded = next((s.start for s in stops.get(case_id or "", []) if s.kind == kind),
                        None)
        if recorded is None or recorded <= at:
            continue
        for d in by_case.get(case_id or "", []):
            if at < d.at <= recorded and (channel is None or d.channel == channel) and not (
                    kind == "dispute_opened" and d.purpose == "validation_notice"):
                found.append(f"{loan_id}: {d.step} ({d.channel}) delivered {ctx.at(d.at)}, "
                             f"after {kind} was reported ({ctx.at(at)}), before it was "
                             f"recorded ({ctx.at(recorded)})")
    return found


def _steps(policy: Policy) -> dict[str, ContactStep]:
    steps = [*policy.reminder.steps, *policy.negotiation.steps, policy.legal.demand_letter]
    return {s.name: s for s in steps}


@dataclass
class Skip:
    loan_id: str
    step: str
    at: datetime
    late_by: float
    faulted: bool
    first: bool


def check_skipped(ctx: Context) -> tuple[CheckResult, CheckResult, list[Skip]]:
    """Superseded steps the policy does not let go, and loans whose first reminder step
    was superseded (a first step not sent because of a stop fact or a closed loan is only
    noted: it must not be sent)."""
    required = CheckResult("required contacts skipped (superseded)", 0)
    first = CheckResult("loans whose first contact was skipped", 0)
    steps = _steps(ctx.policy)
    first_step = ctx.policy.reminder.steps[0].name
    entered = {(r["case_id"], r["to_stage"]): r["occurred_at"] for r in
               sorted(ctx.snap.transitions, key=lambda r: r["id"], reverse=True)
               if r["to_stage"]}
    decided = defaultdict(list)
    for d in ctx.snap.decisions:
        decided[(d["case_id"], d["proposed_at"])].append(d["step"])
    skips: list[Skip] = []
    for e in ctx.snap.events:
        if e["kind"] != "contact_skipped":
            continue
        details = (e["data"] or {}).get("details") or {}
        name, stage = details.get("step", "?"), details.get("stage", "?")
        superseded = "superseded" in str(details.get("detail", ""))
        step = steps.get(name)
        since = entered.get((e["case_id"], stage))
        by = [s for s in decided.get((e["case_id"], e["occurred_at"]), []) if s != name]
        offset = step.offset.total_seconds() if step else 0.0
        late_by = (e["occurred_at"] - since).total_seconds() - offset if since else 0.0
        faults = ctx.faults_between(since, e["occurred_at"]) if since else []
        line = (f"{e['loan_id']}: {name} ({stage}) skipped at {ctx.at(e['occurred_at'])}"
                + (f", {late_by:.0f} s after it fell due (policy offset {offset:.0f} s "
                   f"from the stage start at {ctx.at(since)})" if since else "")
                + (f", superseded by {by[0]}" if by else "")
                + f"; faults since the stage start: {', '.join(faults) or 'none'}")
        if not superseded:
            if name == first_step and stage == "REMINDER":
                ctx.notes.append(f"{e['loan_id']}: first step {name} not sent: "
                                 f"{details.get('detail', '')}"[:200])
            continue
        if not getattr(step, "supersedable", False):
            required.count += 1
            required.details.append(line)
            skips.append(Skip(e["loan_id"], name, e["occurred_at"], late_by, bool(faults),
                              name == first_step and stage == "REMINDER"))
        if name == first_step and stage == "REMINDER":
            first.count += 1
            first.details.append(line)
    if skips:
        calm = [x for x in skips if not x.faulted]
        late = sorted(x.late_by for x in skips)
        required.diagnosis.append(
            f"the skipping loans ran {late[0]:.0f}-{late[-1]:.0f} s behind their steps; "
            f"{len(calm)} of {len(skips)} skips had no fault at all since the stage began "
            f"(load alone), {len(skips) - len(calm)} followed a fault. Each was overdue "
            "when its workflow got round to it, with a later step overdue too, and was "
            "recorded 'superseded' although the policy does not mark it supersedable (the "
            "planner's collapse of missed steps, duecourse/domain/planner.py).")
    return required, first, skips



def check_status(statuses: dict[str, CollectionStatus | str]) -> CheckResult:
    result = CheckResult("loans neither closed nor with a next action", 0)
    for loan_id, status in sorted(statuses.items()):
        if isinstance(status, str):
            result.count += 1
            result.details.append(f"{loan_id}: {status}")
        elif status.outcome is None and status.next_action is None:
            result.count += 1
            result.details.append(f"{loan_id}: open in {status.stage} with no next action")
    return result


async def check_audit(ctx: Context, engine: AsyncEngine) -> CheckResult:
    result = CheckResult("duecourse audit violations", 0)
    report = await run_audit(Ledger(engine))
    result.count = len(report.violations)
    for f in report.violations:  # the recipient is personal data: never printed
        result.details.append(f"{f.loan_id}: {f.step} ({f.channel}) at {ctx.at(f.at)}: "
                              f"{f.code} - {f.detail} [{f.rule}]")
    return result


def notes_for(ctx: Context, statuses: dict[str, CollectionStatus | str],
              behaviour: dict[str, str], settled: bool, busy: list[str]) -> list[str]:
    notes = []
    if not settled:
        notes.append(f"the system did not settle: {len(busy)} workflow(s) still busy, e.g. "
                     + "; ".join(busy[:3]))
    where: Counter[str] = Counter()
    by_behaviour: dict[str, Counter[str]] = defaultdict(Counter)
    for loan_id, status in statuses.items():
        label = status if isinstance(status, str) else (
            status.outcome or status.stage + (f"/{status.legal_phase}"
                                              if status.legal_phase else ""))
        label = label if len(label) < 40 else "status unavailable"
        where[label] += 1
        by_behaviour[behaviour.get(loan_id, "?")][label] += 1
    notes.append("loans at the end: " + ", ".join(f"{k} {v}" for k, v in sorted(where.items())))
    notes.append("by behaviour: " + "; ".join(
        f"{b}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
        for b, c in sorted(by_behaviour.items())))
    kinds = Counter(e["kind"] for e in ctx.snap.events)
    attempts = Counter(c["status"] for c in ctx.snap.contacts)
    notes.append("ledger: contact attempts "
                 + ", ".join(f"{k} {v}" for k, v in sorted(attempts.items()))
                 + f"; {len(ctx.snap.outbox)} outbox rows, {len(ctx.snap.payments)} payments, "
                 f"{len(ctx.snap.events)} audit events; " + ", ".join(
                     f"{k} {kinds[k]}" for k in ("contact_skipped", "contact_blocked",
                                                 "contact_failed", "required_notice_not_sent",
                                                 "payment_duplicate_ignored")))
    if attempts.get("claimed"):
        notes.append(f"{attempts['claimed']} contact attempt(s) still 'claimed' after settling "
                     "(a send neither finished nor released)")
    return notes


async def run_checks(*, engine: AsyncEngine, client: CollectionClient, policy: Policy,
                     loans: list[LoanIntake], behaviour: dict[str, str],
                     reported: dict[str, list[PaymentReport]], actions: Sequence[Any],
                     descriptions: dict[str, str],
                     statuses: dict[str, CollectionStatus | str], faults: list[FaultWindow],
                     offset: Callable[[datetime], float], settled: bool,
                     busy: list[str]) -> Report:
    snap = await snapshot(engine)
    cases_by_loan: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in snap.cases:
        cases_by_loan[case["loan_id"]].append(case)
    ctx = Context(snap, policy, loans, faults, offset, cases_by_loan)
    results: dict[str, list[str]] = defaultdict(list)  # payment reference -> signal results
    for action in actions:
        if action.kind == "pay":
            results[action.payload.reference].append(action.result)
    late_result, late = check_contacts_after_stop(ctx)
    await diagnose_late(ctx, client, late, late_result)
    required, first, skips = check_skipped(ctx)
    await diagnose_skips(ctx, client, skips, required)
    checks = [
        check_lost_loans(ctx, descriptions),
        check_lost_payments(ctx, reported, results),
        check_duplicate_messages(ctx),
        check_outbox(ctx),
        check_duplicate_payments(ctx),
        late_result,
        required,
        first,
        check_status(statuses),
        await check_audit(ctx, engine),
    ]
    notes = notes_for(ctx, statuses, behaviour, settled, busy) + ctx.notes
    lagged = reported_but_unrecorded(ctx, loans, actions)
    if lagged:
        notes.append(f"{len(lagged)} contact(s) went out after a stop was reported but "
                     "before the workflow recorded it (not counted above, which uses "
                     "recorded times): " + "; ".join(lagged[:SHOWN]))
    return Report(checks, notes)
