"""The consent ledger over the API: record that a borrower gave or withdrew consent to a
channel (and from what source: an application form, a call), and read its history.

Consent belongs to the borrower, not to one loan: withdrawing opts every open loan of the
borrower out of the channel at once, giving opts them back in, and a loan handed over
later starts from the ledger's standing (open_loan), so the ledger and the loans never
disagree. After the borrower withdrew (a STOP, the unsubscribe link, or a source starting
"borrower_"), only the borrower can consent again (TCPA practice: a revocation stands until
the consumer re-consents): a "given" must name one of BORROWER_SOURCES, else it is refused
with a 409 and nothing changes. Who may say the borrower consented is limited too
(BORROWER_SOURCE_ROLES): a START reply is recorded by the SMS inbound alone, a web form by
the platform that runs it, a signed form by the platform or a supervisor who checked it.
Served under the inbound router (see duecourse.api.routes.inbound), which the app
registers.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from duecourse.api.auth import Principal, Role, allow
from duecourse.api.params import LoanId
from duecourse.api.problems import ProblemError, responses
from duecourse.api.services import Svc
from duecourse.domain.actor import ActorKind
from duecourse.domain.compliance.requests import PreferenceChange
from duecourse.domain.policy import Channel
from duecourse.inbound.store import InboundStore
from duecourse.store import tables as t
from duecourse.temporal.client import LoanClosed, LoanNotFound

router = APIRouter(prefix="/v1/loans/{loan_id}/consents", tags=["consent"])
Writer = Annotated[Principal, Depends(allow(Role.PLATFORM, Role.AGENT, Role.SUPERVISOR))]
Reader = Annotated[Principal, Depends(allow(Role.PLATFORM, Role.AGENT, Role.SUPERVISOR,
                                            Role.OPS))]


BORROWER_SOURCES = frozenset({"borrower_sms_start", "borrower_web_form",
                              "borrower_signed_form"})
"""Sources that say the borrower gave consent themselves: a START/UNSTOP reply to the
platform's number, a form the borrower submitted online, a form the borrower signed."""

BORROWER_SOURCE_ROLES: dict[str, frozenset[Role]] = {
    "borrower_sms_start": frozenset(),  # only the borrower's START reply (inbound SMS)
    "borrower_web_form": frozenset({Role.PLATFORM}),
    "borrower_signed_form": frozenset({Role.PLATFORM, Role.SUPERVISOR}),
}
"""Which API roles may record each borrower source (an agent cannot vouch for one)."""

BORROWER_WITHDRAWALS = frozenset({"sms_reply", "unsubscribe_link"})
"""Sources of withdrawals the borrower made themselves (with any "borrower_" source)."""


def _borrowers(row: dict[str, object]) -> bool:
    """Whether a withdrawal came from the borrower (not an agent's or platform's own)."""
    source = str(row["source"])
    return row["actor_kind"] == ActorKind.BORROWER.value or \
        source in BORROWER_WITHDRAWALS or source.startswith("borrower_")


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    action: Literal["given", "withdrawn"]
    source: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$",
                        description="where it came from, e.g. application_form, call; "
                        "after the borrower withdrew, a given needs borrower_sms_start, "
                        "borrower_web_form or borrower_signed_form")
    note: str = Field(default="", max_length=2000)


class ConsentView(BaseModel):
    channel: str
    action: str
    source: str
    actor: str
    note: str
    occurred_at: datetime


class ConsentList(BaseModel):
    consents: list[ConsentView]


async def _borrower(svc: Svc, loan_id: str) -> str:
    async with svc.ledger.engine.connect() as conn:
        found = (await conn.execute(select(t.loans.c.borrower_id).where(
            t.loans.c.loan_id == loan_id))).scalar()
    if found is None:
        raise ProblemError(404, "Loan not found", f"no loan {loan_id} in the ledger")
    return str(found)


@router.post("", status_code=201, response_model=ConsentView, responses=responses(404, 409))
async def record(loan_id: LoanId, body: ConsentIn, svc: Svc, who: Writer) -> ConsentView:
    """Record consent given or withdrawn for the loan's borrower."""
    borrower = await _borrower(svc, loan_id)
    store = InboundStore(svc.ledger.engine)
    allowed = BORROWER_SOURCE_ROLES.get(body.source)
    if allowed is not None and who.role not in allowed:
        raise ProblemError(403, "Not the borrower's word", (
            f"source {body.source} is recorded " + (
                "when the borrower replies START to our SMS, never through the API"
                if not allowed else
                f"only by a {' or '.join(sorted(r.value for r in allowed))} key")
            + f"; a {who.role.value} key cannot record it"))
    if body.action == "given" and body.source not in BORROWER_SOURCES:
        latest = await store.latest_consent(borrower, body.channel.value)
        if latest is not None and latest["action"] == "withdrawn" and _borrowers(latest):
            raise ProblemError(
                409, "Withdrawn by the borrower",
                f"the borrower withdrew consent to {body.channel.value} ({latest['source']}), "
                "and only the borrower can give it again: record their consent with source "
                f"{', '.join(sorted(BORROWER_SOURCES))}")
    change = {"opt_in" if body.action == "given" else "opt_out": [body.channel]}
    sms = body.action if body.channel is Channel.SMS else None  # for sms_needs_consent
    preference = PreferenceChange(**change, sms_consent=sms, actor=who.actor,
                                  note=f"consent {body.action} ({body.source})")
    await svc.client.update_contact_preferences(loan_id, preference)  # 404/409 if closed
    for other in await store.open_loans(borrower):  # the borrower's other loans too
        if other != loan_id:
            with contextlib.suppress(LoanClosed, LoanNotFound):
                await svc.client.update_contact_preferences(other, preference)
    await store.record_consent(
        borrower, loan_id, body.channel.value, body.action, body.source, who.actor, body.note)
    history = await store.consents(borrower)
    return _view(history[-1])


@router.get("", response_model=ConsentList, responses=responses(404))
async def history(loan_id: LoanId, svc: Svc, who: Reader) -> ConsentList:
    """The borrower's consent history, oldest first."""
    borrower = await _borrower(svc, loan_id)
    rows = await InboundStore(svc.ledger.engine).consents(borrower)
    return ConsentList(consents=[_view(r) for r in rows])


def _view(row: dict[str, object]) -> ConsentView:
    return ConsentView(channel=str(row["channel"]), action=str(row["action"]),
                       source=str(row["source"]), actor=f"{row['actor_kind']}:{row['actor_id']}",
                       note=str(row["note"]), occurred_at=row["occurred_at"])  # type: ignore[arg-type]
