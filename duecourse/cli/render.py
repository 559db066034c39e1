"""Human views of a loan: the status panel and the ledger timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from duecourse.domain.case.status import CollectionStatus
from duecourse.store.ledger import TimelineItem

STAGE_STYLE = {"REMINDER": "yellow", "NEGOTIATION": "cyan", "LEGAL": "magenta"}
OUTCOME_STYLE = {"PAID": "green", "SETTLED": "green", "WRITTEN_OFF": "red",
                 "CANCELLED": "dim"}


def when(moment: datetime | None, suffix: str = " UTC") -> str:
    """UTC, to the second: one unambiguous clock for ops across borrower time zones."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + suffix


def relative(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if span >= size:
            text = f"{span // size}{unit}"
            break
    else:
        text = f"{span}s"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def status_view(s: CollectionStatus) -> RenderableType:
    """The panel an agent reads first, then the stage history."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    stage = f"[{STAGE_STYLE.get(s.stage, 'white')}]{s.stage}[/]"
    if s.legal_phase:
        stage += f" · legal phase {s.legal_phase}"
    grid.add_row("Stage", stage)
    if s.outcome:
        grid.add_row("Outcome", f"[{OUTCOME_STYLE.get(s.outcome, 'white')}]{s.outcome}[/] at "
                     f"{when(s.closed_at)}: {escape(s.close_reason)}")
    else:
        grid.add_row("Outcome", "open")
    grid.add_row("Outstanding", f"[bold]{s.outstanding}[/]")
    grid.add_row("Paid", str(s.total_paid))
    grid.add_row("Days past due", str(s.days_past_due))
    if s.next_action:
        grid.add_row("Next action", f"{escape(s.next_action.description)} at "
                     f"{when(s.next_action.due_at)} ({relative(s.next_action.due_at, s.as_of)})")
    else:
        grid.add_row("Next action", "-")
    if p := s.active_promise:
        grid.add_row("Active promise", f"{p.promise_id}: {p.amount:,} {p.currency} by "
                     f"{p.due_date} (checked {when(p.check_at)}, by {p.actor})")
    else:
        grid.add_row("Active promise", "-")
    grid.add_row("Broken promises", str(s.broken_promises))
    grid.add_row("Contacts sent", str(s.contacts_sent))
    if s.approval_escalations:
        grid.add_row("Approval escalations", str(s.approval_escalations))
    grid.add_row("Segment", escape(s.segment or "-") + (
        f" ({escape('; '.join(s.segment_reasons))})" if s.segment_reasons else ""))
    grid.add_row("Assigned agent", escape(s.assigned_agent or "-"))
    if s.plan is not None:
        paid = sum(1 for i in s.plan.instalments if i.status == "paid")
        grid.add_row("Plan", f"{s.plan.plan_id} {s.plan.status}: {paid}/"
                     f"{len(s.plan.instalments)} paid, {s.plan.late} late")
    if s.settlement is not None:
        st = s.settlement
        grid.add_row("Settlement", f"{st.settlement_id} {st.status}: {st.amount:,} "
                     f"{st.currency} by {st.pay_by}")
    if s.open_tasks:
        grid.add_row("Open tasks", escape(", ".join(
            f"{t.task_id} {t.kind.value} ({t.assignee})" for t in s.open_tasks)))
    grid.add_row("Rules", escape(s.rule_pack))
    if s.frozen:
        grid.add_row("Frozen", f"[bold yellow]{escape(s.frozen)}[/]")
    protections = _protections(s)
    if protections:
        grid.add_row("Protections", escape(", ".join(protections)))
    title = f"Loan [bold]{escape(s.loan_id)}[/] · {escape(s.jurisdiction)} · policy {s.policy}"
    panel = Panel(grid, title=title, title_align="left",
                  subtitle=f"{s.workflow_id} · as of {when(s.as_of)}", subtitle_align="right")
    history = Table(title="Stage history", title_justify="left")
    history.add_column("#", justify="right")
    history.add_column("stage")
    history.add_column("entered (UTC)")
    history.add_column("left (UTC)")
    history.add_column("by", overflow="fold")
    history.add_column("reason")
    for v in s.stage_history:
        history.add_row(str(v.visit), f"[{STAGE_STYLE.get(v.stage, 'white')}]{v.stage}[/]",
                        when(v.entered_at, ""), when(v.left_at, ""), escape(str(v.actor)),
                        escape(v.reason))
    return Group(panel, history)


def _protections(s: CollectionStatus) -> list[str]:
    st = s.standing
    found = [f"opted out of {c}" for c in st.opted_out]
    found += [f"inconvenient {w.start:%H:%M}-{w.end:%H:%M}" for w in st.inconvenient]
    if st.cease_communication_at:
        found.append("cease communication")
    if st.attorney_at:
        found.append("represented by an attorney")
    found += [f"{h.kind.value} hold" + (f" until {when(h.end)}" if h.end else "")
              for h in st.holds if h.covers(s.as_of)]
    return found


def timeline_table(loan_id: str, items: Sequence[TimelineItem]) -> Table:
    table = Table(title=f"Timeline of loan {escape(loan_id)}", title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("kind", style="cyan", no_wrap=True)
    table.add_column("actor", overflow="fold")
    table.add_column("summary", ratio=1)
    for item in items:
        table.add_row(when(item.occurred_at, ""), item.kind, escape(item.actor),
                      escape(item.summary))
    return table
