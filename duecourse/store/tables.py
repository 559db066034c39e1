"""Ledger tables (SQLAlchemy Core). Alembic migrations create them; keep both in step.

Every event table has a unique `idempotency_key` (`<case_id>:<step>`), so a retried
activity can never write a second row. `audit_events` is append-only (database triggers).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from duecourse.store.types import Amount, UtcDateTime

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})


def _key() -> Column[str]:
    return Column("idempotency_key", String(200), nullable=False, unique=True)


def _case() -> list[Column[str]]:
    return [
        Column("case_id", String(64), ForeignKey("collection_cases.case_id"), nullable=False),
        Column("loan_id", String(64), nullable=False, index=True),
    ]


def _actor() -> list[Column[str]]:
    return [Column("actor_kind", String(16), nullable=False),
            Column("actor_id", String(128), nullable=False)]


loans = Table(
    "loans", metadata,
    Column("loan_id", String(64), primary_key=True),
    Column("borrower_id", String(64), nullable=False, index=True),
    Column("borrower_name", String(200), nullable=False),
    Column("borrower", JSON, nullable=False),
    Column("jurisdiction", String(8), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("principal", Amount, nullable=False),
    Column("product", String(32), nullable=False),
    Column("first_handed_over_at", UtcDateTime, nullable=False),
)

collection_cases = Table(
    "collection_cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("loan_id", String(64), ForeignKey("loans.loan_id"), nullable=False, index=True),
    Column("workflow_id", String(100), nullable=False),
    Column("policy", String(100), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("outstanding_at_open", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("outcome", String(16)),
    Column("closed_at", UtcDateTime),
    Column("compliance", JSON),
    Column("experiment", String(64)),  # the experiment the loan was assigned under
    Column("strategy", String(64), index=True),  # its arm (None: no experiment)
)

stage_transitions = Table(
    "stage_transitions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("from_stage", String(16)),
    Column("to_stage", String(16)),
    Column("outcome", String(16)),
    Column("reason", Text, nullable=False),
    Column("days_past_due", Integer, nullable=False),
    *_actor(),
    Column("occurred_at", UtcDateTime, nullable=False),
)

contact_attempts = Table(
    "contact_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("stage", String(16), nullable=False),
    Column("step", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("template", String(64), nullable=False),
    Column("language", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipient_kind", String(16), nullable=False, server_default="debtor"),
    Column("purpose", String(32), nullable=False, server_default="collection"),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_message_id", String(200)),
    Column("scheduled_for", UtcDateTime, nullable=False),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("decision_key", String(200)),
    Column("not_after", UtcDateTime),
    Column("lease_owner", String(128)),
    Column("lease_until", UtcDateTime),
    Column("channel_attempts", Integer, nullable=False, server_default="0"),
    Column("fenced_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    Column("sent_via", String(64)),  # the adapter and provider, e.g. "smtp:mail.example"
    Column("segments", Integer),  # SMS: parts the text is sent in
    Column("encoding", String(8)),  # SMS: GSM-7 or UCS-2
    Column("error", Text),
)
"""One row per planned message: claimed (with the decision that allowed it and a lease)
before the channel is called, then sent, failed, cancelled (a stop fact fenced it),
expired (its lawful window closed first) or in_doubt (released after the channel had been
called: it may have got through); agents' own contacts are made_by_person."""

payments = Table(
    "payments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("reference", String(128), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("applied", Amount, nullable=False),
    Column("overpaid", Amount, nullable=False),
    Column("outstanding_after", Amount, nullable=False),
    Column("paid_at", UtcDateTime, nullable=False),
    *_actor(),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("case_id", "reference", name="uq_payments_case_reference"),
)

promises = Table(
    "promises", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("promise_id", String(32), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False, default=""),
    *_actor(),
    Column("occurred_at", UtcDateTime, nullable=False),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("kind", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    *_actor(),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_audit_events_loan_time", "loan_id", "occurred_at"),
)

compliance_decisions = Table(
    "compliance_decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("step", String(96), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipient_kind", String(16), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("proposed_at", UtcDateTime, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("until", UtcDateTime),
    Column("valid_until", UtcDateTime),
    Column("code", String(48), nullable=False),
    Column("rule", Text, nullable=False),
    Column("detail", Text, nullable=False),
    *_actor(),
)

tasks = Table(
    "tasks", metadata,
    Column("task_id", String(128), primary_key=True),
    *_case(),
    Column("kind", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("assignee", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("escalated_at", UtcDateTime),
    Column("outcome", String(32), nullable=False),
    Column("completed_by", String(160)),
    Column("completed_at", UtcDateTime),
    Column("note", Text, nullable=False),
    Column("version", Integer, nullable=False),
)
"""The work queue: a projection of the task history in audit_events, newest version wins."""

agreements = Table(
    "agreements", metadata,
    Column("agreement_id", String(64), nullable=False),
    *_case(),
    Column("agreement_type", String(16), nullable=False),
    Column("status", String(24), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("terms", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("case_id", "agreement_id", name="uq_agreements_case_agreement"),
)
"""Plans and settlements as they stand now; their history is in audit_events."""

documents = Table(
    "documents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("kind", String(32), nullable=False),
    Column("language", String(16), nullable=False),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("pdf", LargeBinary),  # a letter's PDF exactly as handed to print-and-mail
    Column("sha256", String(64)),  # of `pdf`: matches the spool file the print house got
    Column("mime", String(64)),
)
"""Formal documents as rendered and sent: demand letters, referral packs, letters' PDFs."""

ops_alerts = Table(
    "ops_alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("raised_at", UtcDateTime, nullable=False),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_by", String(160)),
    Column("note", Text),
)
"""What the workflows could not settle alone; ops acknowledge each (who, when, a note)."""

pseudonymised_cases = Table(
    "pseudonymised_cases", metadata,
    Column("case_id", String(64), ForeignKey("collection_cases.case_id"), primary_key=True),
    Column("loan_id", String(64), nullable=False, index=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("key_id", String(64), nullable=False),
    Column("jurisdiction", String(8), nullable=False),
    Column("retention_years", Integer, nullable=False),
    Column("last_activity_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
    Column("columns", JSON, nullable=False),
    Column("values_replaced", Integer, nullable=False),
)
"""Cases whose personal data a retention run replaced by keyed pseudonyms (duecourse.store.
retention): when, by which run and key, which `table.column`s changed. A row without
`completed_at` exists only inside the run's transaction; it is what lets the audit_events
triggers accept that case's pseudonymised summaries and data."""

outbox_messages = Table(
    "outbox_messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


platforms = Table(
    "platforms", metadata,
    Column("platform_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
)
"""Platforms (tenants): each owns the loans it hands over and its webhooks, whichever of
its keys acted; a disabled platform's keys are refused."""

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("platform_id", String(128), ForeignKey("platforms.platform_id"), index=True),
)
"""API keys: only a hash of each secret is kept; the key is shown once, at creation. A
platform key belongs to its platform (`platform_id`); a person's key to none."""

webhooks = Table(
    "webhooks", metadata,
    Column("webhook_id", String(32), primary_key=True),
    Column("owner", String(128), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("events", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
)
"""Where platforms want events; the secret signs each delivery (HMAC-SHA256), so it is
kept as given."""

loan_owners = Table(
    "loan_owners", metadata,
    Column("loan_id", String(64), primary_key=True),
    Column("platform", String(128), nullable=False, index=True),
    Column("claimed_at", UtcDateTime, nullable=False),
)
"""Which platform (`platforms.platform_id`) handed each loan over: its events go to that
platform's webhooks only. Loans started by the lender itself (CLI, starter) have no row."""

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
    Column("webhook_id", String(32), ForeignKey("webhooks.webhook_id"), nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("loan_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("event_id", "webhook_id", name="uq_webhook_deliveries_event_webhook"),
)
"""One row per event and webhook: delivered once, whatever the retries."""

webhook_outbox = Table(
    "webhook_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
    Column("webhook_id", String(32), ForeignKey("webhooks.webhook_id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False, index=True),
    Column("claim", String(32)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("traceparent", String(128)),
    UniqueConstraint("event_id", "webhook_id", name="uq_webhook_outbox_event_webhook"),
)
"""Deliveries still owed: one row per event and subscribed webhook, written in the ledger
transaction of the fact that caused the event, and deleted once the delivery is recorded
as delivered or failed in webhook_deliveries. `body` is the event's JSON exactly as it is
posted (and signed). A dispatcher claims a due row by setting `claim` to a token of its own
and pushing `next_attempt_at` to the end of its lease: a dispatcher that dies mid-delivery
leaves the row due again when the lease runs out, and its late writes (all conditioned on
its token) change nothing. `traceparent` is the W3C trace context of the span that wrote
the row (when tracing is on), which its delivery spans continue."""

payload_access = Table(
    "payload_access", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", UtcDateTime, nullable=False, index=True),
    Column("operation", String(8), nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("reason", Text),
    Column("key_id", String(32)),
    Column("key_name", String(128)),
    Column("role", String(16)),
    Column("namespace", String(255)),
    Column("origin", Text),
    Column("payload_count", Integer, nullable=False),
    Column("payload_key_ids", JSON, nullable=False),
)
"""Every request to the codec server (decode and encode), allowed or refused: who (API key
id, name and role; none when the key is unknown), which namespace, how many payloads and
which payload keys sealed them, from which browser origin, and the answer. Never a
payload's content."""

# ---------------------------------------------------------------- inbound (issue 13)
inbound_replies = Table(
    "inbound_replies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(200), nullable=False, unique=True),
    Column("profile", String(16), nullable=False),
    Column("sender", String(64), nullable=False, index=True),
    Column("receiver", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("loan_id", String(64), index=True),
    Column("claimed_until", UtcDateTime),
    Column("applied_at", UtcDateTime),
    Column("outcome", String(32)),
    Column("answer_id", String(200)),
    Column("answer_error", Text),
)
"""Every SMS reply a gateway posted, once (`dedup_key`: the provider's id, else a hash of
sender, text and time): its kind (stop, help, other), the loan it was matched to (none:
an unknown sender, kept for review) and what was done (`outcome`, the answer we sent).
`claimed_until` lets one request act on it; `applied_at` marks it done."""

delivery_receipts = Table(
    "delivery_receipts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(260), nullable=False, unique=True),
    Column("provider_message_id", String(200), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("attempt_id", Integer, index=True),
    Column("loan_id", String(64), index=True),
    Column("received_at", UtcDateTime, nullable=False),
)
"""What providers said became of a message (delivered, failed, undelivered, bounced),
once per message, status and detail; `attempt_id` is the contact_attempts row it is
about (none: a message we do not know)."""

unreachable_addresses = Table(
    "unreachable_addresses", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("address", String(320), nullable=False),
    Column("reason", Text, nullable=False),
    Column("loan_id", String(64)),
    Column("marked_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel", "address", name="uq_unreachable_addresses_channel_address"),
)
"""Numbers and addresses a provider called invalid (an invalid-recipient failure, a hard
bounce): never sent to again."""

consents = Table(
    "consents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(200), unique=True),
    Column("borrower_id", String(64), nullable=False, index=True),
    Column("loan_id", String(64)),
    Column("channel", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("source", String(32), nullable=False),
    *_actor(),
    Column("note", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
"""The consent ledger: per borrower and channel, each time consent was given or withdrawn,
from what source (sms_reply, api, ...) and by whom; the latest row is the standing."""

agent_calls = Table(
    "agent_calls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _key(), *_case(),
    Column("call_id", String(200), unique=True),
    Column("recipient", String(320), nullable=False),
    Column("recipient_kind", String(16), nullable=False),
    Column("person", String(128)),
    *_actor(),
    Column("dialer", String(64), nullable=False),
    Column("decision", JSON, nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("placed_at", UtcDateTime),
)
"""Calls an agent placed through the dialer ("click to dial", duecourse.desk_calls): the
key it went under, the dialer's call id once it answered, and whose call it is (loan,
case, number, agent), so the dialer's result callback reaches that loan. The contact
itself was logged when the engine allowed it (request_contact)."""

provider_payments = Table(
    "provider_payments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("checkout_id", String(200), nullable=False),
    *_case(),
    Column("reference", String(128), nullable=False, unique=True),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("external_id", String(200), index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("paid_at", UtcDateTime),
    Column("reported_at", UtcDateTime),
    Column("refunded_at", UtcDateTime),
    UniqueConstraint("provider", "checkout_id", name="uq_provider_payments_provider_checkout"),
)
"""Checkouts a borrower opened with a payment provider (duecourse.payments) and what the
provider's signed webhooks said: open, paid, failed or refunded. `reference` is what the
loan received as its payment reference; a paid row is reported once the loan took it
(reported_at). A failed or refunded row never reduces a balance. No personal data: ids,
amounts and times."""
