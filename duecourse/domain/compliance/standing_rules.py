"""Rules on who may be contacted, how and why: waiting never satisfies them, only a change
of the facts (a dispute verified, consent given, an opt-out lifted) does."""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.calendar import local_date
from duecourse.domain.compliance.consent_rules import SMS_CONSENT
from duecourse.domain.compliance.context import Context, time_barred_from, validation_period_end
from duecourse.domain.compliance.model import (
    AttemptResult,
    ContactEvent,
    ProposedContact,
    Purpose,
    RecipientKind,
    same_person,
)
from duecourse.domain.compliance.rule import Rule, never_unless
from duecourse.domain.policy import Channel

ELECTRONIC = (Channel.EMAIL, Channel.SMS)
COMMUNICATED = (AttemptResult.SENT, AttemptResult.ANSWERED, AttemptResult.REFUSED)
"""Results that mean something reached the person (a call that rang out did not)."""


def freezing_dispute(ctx: Context) -> bool:
    """An open dispute that stops collection under the pack: any dispute, or (US law) one
    made in writing within the validation period (1006.38(d)(2)); before the notice has
    gone out the period has not ended, so a written dispute then stops collection too."""
    s, pack = ctx.standing, ctx.pack
    if not (pack.dispute_freezes_collection and s.dispute_open):
        return False
    if not pack.dispute_freezes_only_written_in_validation_period:
        return True
    if not s.dispute_written:
        return False
    ends = validation_period_end(ctx)
    return ends is None or (s.dispute_opened_at is not None and s.dispute_opened_at < ends)


def time_barred(ctx: Context, t: datetime) -> bool:
    barred = time_barred_from(ctx)
    return barred is not None and local_date(t, ctx.timezone) >= barred


def debtor_unreachable(ctx: Context) -> bool:
    """The debtor cannot be reached: the latest N calls and texts to them all failed or
    went unanswered (N = `unreachable_after_failed_attempts`)."""
    attempts = [e for e in ctx.history if e.recipient_kind is RecipientKind.DEBTOR
                and e.channel in (Channel.VOICE, Channel.SMS)]
    needed = ctx.pack.unreachable_after_failed_attempts
    latest = attempts[-needed:]
    return len(latest) == needed and all(
        e.result in (AttemptResult.FAILED, AttemptResult.UNANSWERED) for e in latest)


def communications_with(ctx: Context, p: ProposedContact, before: datetime
                        ) -> list[ContactEvent]:
    """What reached the person `p` is for, up to `before` (never their calls to us)."""
    return [e for e in ctx.history if same_person(e, p) and e.at <= before
            and not e.inbound and e.result in COMMUNICATED]


def _third(p: ProposedContact) -> bool:
    return p.recipient_kind is RecipientKind.THIRD_PARTY


def _refused(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    """The third party refused further contact - as a person, on whichever number."""
    refused = ctx.standing.refused_third_parties
    return _third(p) and (p.address in refused or p.who in refused or any(
        same_person(e, p) and e.result is AttemptResult.REFUSED and e.at <= t
        for e in ctx.history))


def _opted(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    opted = ctx.standing.opted_out.get(p.channel)
    return opted is None or opted > t


def _purpose_ok(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    purposes = ctx.pack.third_party_purposes
    return not _third(p) or purposes is None or p.purpose in purposes


def _once(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    cap = ctx.pack.third_party_contacts_per_person
    if not _third(p) or cap is None or p.who in ctx.standing.recontact_invited:
        return True
    return len(communications_with(ctx, p, t)) < cap


def _electronic_notice(p: ProposedContact) -> bool:
    return p.purpose is Purpose.VALIDATION_NOTICE and p.channel in ELECTRONIC


def _consented(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    consent = ctx.standing.esign_consent_at
    return not (ctx.pack.electronic_notice_needs_consent and _electronic_notice(p)) or (
        consent is not None and consent <= t)


def _deliverable(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    if not (ctx.pack.electronic_notice_needs_consent and _electronic_notice(p)):
        return True
    return not any(e.channel is p.channel and e.address == p.address and e.at <= t
                   and e.result is AttemptResult.FAILED for e in ctx.history)


def _workplace(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    banned = ctx.standing.workplace_contact_prohibited_at
    return not (ctx.pack.honour_workplace_prohibition and p.at_workplace
                and banned is not None and banned <= t)


def _before(moment: datetime | None, t: datetime) -> bool:
    return moment is not None and moment <= t


STANDING_RULES: list[Rule] = [
    Rule("deceased", never_unless(lambda p, c, t: not _before(c.standing.deceased_at, t)),
         "the borrower is deceased; all contact stops"),
    Rule("bankruptcy", never_unless(
        lambda p, c, t: not _before(c.standing.bankruptcy_at, t)),
        "the borrower is in bankruptcy; all contact stops"),
    Rule("dispute", never_unless(
        lambda p, c, t: p.purpose is Purpose.VALIDATION_NOTICE or not freezing_dispute(c)),
        "the debt is disputed and verification has not been sent"),
    Rule("cease", never_unless(lambda p, c, t: not (
        c.pack.cease_communication_stops_contact and
        _before(c.standing.cease_communication_at, t))),
        "the borrower asked us to cease communication"),
    Rule("attorney", never_unless(lambda p, c, t: not (
        c.pack.attorney_stops_contact and _before(c.standing.attorney_at, t))),
        "an attorney represents the borrower; contact them instead"),
    Rule("opted_out", never_unless(_opted),
         lambda p, c, t: f"the borrower opted out of {p.channel} on "
                         f"{c.standing.opted_out[p.channel].date()}"),
    SMS_CONSENT,
    Rule("third_party_refused", never_unless(lambda p, c, t: not _refused(p, c, t)),
        "this contact refused further contact"),
    Rule("disclosure", never_unless(lambda p, c, t: not (_third(p) and p.discloses_debt)),
         "a message to a third party must not disclose the debt"),
    Rule("third_party", never_unless(_purpose_ok),
         lambda p, c, t: "third parties may only be asked for "
                         + " or ".join(x.replace("_", " ") for x in
                                       c.pack.third_party_purposes or [])),
    Rule("third_party", never_unless(lambda p, c, t: not (
        _third(p) and c.pack.third_party_only_when_unreachable and not debtor_unreachable(c))),
        "the debtor is reachable; third parties may not be contacted"),
    Rule("third_party_once", never_unless(_once),
         "this third party was already contacted; again only if they asked or their "
         "answer was wrong"),
    Rule("visit_collectors", never_unless(lambda p, c, t: not (
        c.pack.min_visit_collectors and p.channel is Channel.VISIT
        and p.collectors < c.pack.min_visit_collectors)),
        lambda p, c, t: f"a visit needs at least {c.pack.min_visit_collectors} collectors, "
                        f"{p.collectors} planned"),
    Rule("workplace", never_unless(_workplace),
         "the employer prohibits contact at the place of employment"),
    Rule("employer_email", never_unless(lambda p, c, t: not (
        c.pack.no_email_to_employer_address and p.channel is Channel.EMAIL
        and p.address.casefold() in {a.casefold() for a in c.standing.employer_provided})),
        "this email address was provided by the borrower's employer"),
    Rule("esign_consent", never_unless(_consented),
         "an electronic validation notice needs the consumer's E-SIGN consent"),
    Rule("undeliverable", never_unless(_deliverable),
         "an earlier message to this address was not delivered; send the notice another "
         "way"),
    Rule("validation_notice", never_unless(lambda p, c, t: not (
        c.pack.collection_waits_for_validation_notice
        and p.purpose in (Purpose.COLLECTION, Purpose.DEMAND)
        and p.recipient_kind is RecipientKind.DEBTOR
        and not _before(c.standing.validation_notice_at, t))),
        "our policy: the validation notice goes out before any collection contact"),
    Rule("time_barred", never_unless(lambda p, c, t: not (
        p.purpose is Purpose.DEMAND and time_barred(c, t))),
        "the debt is time-barred: no demand that threatens legal action"),
]
"""In the order a Blocked decision names them (the gravest first)."""
