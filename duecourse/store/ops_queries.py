"""What ops read in the ledger - messages and alerts - and the one thing they write here:
an alert's acknowledgement.

A message row is either a planned message (`contact_attempts`), joined to the compliance
decision that allowed it (its `decision_key`; an agent's own contact: the decision its
`contact-by-person:` key names) and to the outbox copy (the same idempotency key: what
the channel really holds), or a decision that stopped a contact before any message was
rendered (`compliance_decisions` blocked or deferred: those never get an attempt row).
Bodies are returned only for messages that went (or may have gone) out, and never logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import Actor
from duecourse.store import tables as t
from duecourse.store.ledger import Ledger

STOPPED = ("blocked", "deferred")
"""Decisions that leave no attempt row behind: they are messages that did not go."""
WITH_BODY = ("sent", "in_doubt")
"""Statuses whose body reached (or may have reached) the borrower."""


class MessageView(BaseModel):
    """One message sent, stopped or planned, and the compliance decision behind it (the
    CLI's row and the API's body alike)."""

    at: datetime = Field(description="when it was sent (or last attempted, or decided)")
    loan_id: str
    case_id: str
    channel: str
    recipient_kind: str = Field(description="debtor, guarantor or third_party")
    purpose: str
    status: str = Field(description="sent, blocked, deferred, failed, cancelled, expired, "
                                    "in_doubt, claimed (sending now) or made_by_person")
    step: str
    template: str | None
    verdict: str | None = Field(description="the compliance decision: allowed, blocked or "
                                            "deferred (none recorded for older messages)")
    code: str
    rule: str = Field(description="the rule and its legal reference, when one decided")
    detail: str
    until: datetime | None = Field(description="deferred: when it is asked again; allowed: "
                                               "the end of its lawful window")
    decided_by: str | None
    subject: str | None
    body: str | None = Field(description="as handed to the channel; only for messages "
                                         "that went (or may have gone) out")
    message_id: str | None
    error: str | None
    key: str = Field(description="the message's idempotency key")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reason(self) -> str:
        """The rule that decided, in one line: `[code] rule: detail`, or the verdict."""
        if self.code or self.rule:
            text = f"[{self.code}] {self.rule}".strip()
            return f"{text}: {self.detail}" if self.detail else text
        if self.verdict:
            return self.verdict + (f" ({self.detail})" if self.detail else "")
        return "no decision recorded"


class AlertView(BaseModel):
    alert_id: int
    loan_id: str
    case_id: str
    subject: str
    body: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def open(self) -> bool:
        """Nobody acknowledged it yet."""
        return self.acknowledged_at is None


class AlertNotFound(LookupError):
    """No alert with that id in this ledger."""


class Acknowledgement(BaseModel):
    alert: AlertView
    already: bool  # acknowledged before, by someone else or earlier: nothing changed

    @property
    def sentence(self) -> str:
        a = self.alert
        note = f" (note: {a.note})" if a.note else ""
        at = _utc(a.acknowledged_at)
        if self.already:
            return (f"alert {a.alert_id} was already acknowledged by {a.acknowledged_by} at "
                    f"{at}{note}; nothing changed")
        return f"alert {a.alert_id} acknowledged by {a.acknowledged_by} at {at}{note}"


def _utc(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def list_messages(engine: AsyncEngine, loan_id: str | None = None,
                   channel: str | None = None, since: datetime | None = None,
                   limit: int = 100) -> list[MessageView]:
    """The newest `limit` messages (sent, failed, stopped...) and stopping decisions."""
    ca, cd, ob = t.contact_attempts, t.compliance_decisions, t.outbox_messages
    at = func.coalesce(ca.c.sent_at, ca.c.attempted_at).label("at")
    decision = func.coalesce(ca.c.decision_key, func.replace(
        ca.c.idempotency_key, ":contact-by-person:", ":"))
    attempts = (select(ca, at, cd.c.verdict, cd.c.code, cd.c.rule, cd.c.detail, cd.c.until,
                       cd.c.valid_until, cd.c.actor_kind, cd.c.actor_id,
                       ob.c.subject.label("outbox_subject"), ob.c.body.label("outbox_body"))
                .outerjoin(cd, cd.c.idempotency_key == decision)
                .outerjoin(ob, ob.c.idempotency_key == ca.c.idempotency_key)
                .order_by(at.desc(), ca.c.id.desc()).limit(limit))
    stopped = (select(cd).where(cd.c.verdict.in_(STOPPED))
               .order_by(cd.c.proposed_at.desc(), cd.c.id.desc()).limit(limit))
    if loan_id:
        attempts = attempts.where(ca.c.loan_id == loan_id)
        stopped = stopped.where(cd.c.loan_id == loan_id)
    if channel:
        attempts = attempts.where(ca.c.channel == channel)
        stopped = stopped.where(cd.c.channel == channel)
    if since is not None:
        attempts = attempts.where(at >= since)
        stopped = stopped.where(cd.c.proposed_at >= since)
    async with engine.connect() as conn:
        sent = (await conn.execute(attempts)).mappings().all()
        held = (await conn.execute(stopped)).mappings().all()
    rows = [_attempt(r) for r in sent] + [_stopped(r) for r in held]
    rows.sort(key=lambda m: (m.at, m.key), reverse=True)
    return rows[:limit]


def _attempt(r: Any) -> MessageView:
    status = r["status"]
    shown = status in WITH_BODY
    by = f"{r['actor_kind']}:{r['actor_id']}" if r["actor_kind"] else None
    return MessageView(
        at=r["at"], loan_id=r["loan_id"], case_id=r["case_id"], channel=r["channel"],
        recipient_kind=r["recipient_kind"], purpose=r["purpose"], status=status,
        step=r["step"], template=None if r["template"] == "-" else r["template"],
        verdict=r["verdict"], code=r["code"] or "", rule=r["rule"] or "",
        detail=r["detail"] or "", until=r["valid_until"], decided_by=by,
        subject=(r["outbox_subject"] or r["subject"]) if shown else None,
        body=(r["outbox_body"] or r["body"]) if shown else None,
        message_id=r["provider_message_id"], error=r["error"], key=r["idempotency_key"])


def _stopped(r: Any) -> MessageView:
    return MessageView(
        at=r["proposed_at"], loan_id=r["loan_id"], case_id=r["case_id"],
        channel=r["channel"], recipient_kind=r["recipient_kind"], purpose=r["purpose"],
        status=r["verdict"], step=r["step"], template=None, verdict=r["verdict"],
        code=r["code"], rule=r["rule"], detail=r["detail"], until=r["until"],
        decided_by=f"{r['actor_kind']}:{r['actor_id']}", subject=None, body=None,
        message_id=None, error=None, key=r["idempotency_key"])


def _alert(r: Any) -> AlertView:
    return AlertView(alert_id=r["id"], loan_id=r["loan_id"], case_id=r["case_id"],
                     subject=r["subject"], body=r["body"], raised_at=r["raised_at"],
                     acknowledged_at=r["acknowledged_at"],
                     acknowledged_by=r["acknowledged_by"], note=r["note"])


async def list_alerts(engine: AsyncEngine, open_only: bool = False, loan_id: str | None = None,
                 limit: int = 100) -> list[AlertView]:
    """Ops alerts, newest first; `open_only`: those nobody acknowledged yet."""
    a = t.ops_alerts
    query = select(a).order_by(a.c.raised_at.desc(), a.c.id.desc()).limit(limit)
    if open_only:
        query = query.where(a.c.acknowledged_at.is_(None))
    if loan_id:
        query = query.where(a.c.loan_id == loan_id)
    async with engine.connect() as conn:
        return [_alert(r) for r in (await conn.execute(query)).mappings().all()]


async def acknowledge(ledger: Ledger, alert_id: int, by: Actor, note: str = "",
                      now: datetime | None = None) -> Acknowledgement:
    """Mark the alert acknowledged, once: a second acknowledgement changes nothing and
    says who was first. The acknowledgement joins the loan's audit trail."""
    a = t.ops_alerts
    now = now or datetime.now(UTC)
    async with ledger.engine.begin() as conn:
        done = await conn.execute(update(a).where(
            a.c.id == alert_id, a.c.acknowledged_at.is_(None)).values(
                acknowledged_at=now, acknowledged_by=str(by), note=note or None))
        row = (await conn.execute(select(a).where(a.c.id == alert_id))).mappings().first()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id} in the ledger")
        alert = _alert(row)
        if done.rowcount:
            await ledger._audit(
                conn, f"{row['idempotency_key']}:ack", row["case_id"], row["loan_id"],
                "ops_alert_acknowledged", f"alert {alert_id} acknowledged by {by}: "
                f"{row['subject']}" + (f" ({note})" if note else ""), by, now,
                {"alert_id": alert_id, "note": note})
    return Acknowledgement(alert=alert, already=not done.rowcount)
