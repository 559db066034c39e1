"""Rule packs: each jurisdiction's contact rules as data, with their legal references.

A pack says what the law says, in the law's own units (per person, consecutive local
days, calls that connected, "after 9:00 p.m."). A policy may be stricter - explicitly, by
overriding a parameter per jurisdiction (`Policy.compliance`, e.g. `{US: {max_call_attempts:
5}}`); `departures()` lists every such choice so it is shown as "our policy", never
passed off as law. Defaults follow shared/domain/collections-reference.md.
"""

from __future__ import annotations

from datetime import time, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.compliance.limitations import US_WRITTEN_CONTRACTS, years
from duecourse.domain.compliance.model import Purpose
from duecourse.domain.policy import ContactHours


class CallWindow(StrEnum):
    CONSECUTIVE_DAYS = "consecutive_days"  # the law: local calendar days
    ROLLING = "rolling"  # stricter: a rolling window of the period's exact length


class LimitationStart(StrEnum):
    DUE_DATE = "due_date"  # the default: the missed payment's due date
    LAST_PAYMENT = "last_payment"  # a payment restarts the period


class RulePack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    jurisdiction: str
    title: str
    contact_hours: ContactHours | None = ContactHours()
    hours_in_every_possible_zone: bool = False
    no_contact_on_public_holidays: bool = False
    honour_inconvenient_times: bool = True
    max_answered_calls_per_day: int | None = None
    max_unanswered_attempts_per_number_per_day: int | None = None
    max_call_attempts: int | None = None
    call_attempt_period: timedelta = timedelta(days=7)
    quiet_after_conversation: timedelta | None = None
    call_window: CallWindow = CallWindow.CONSECUTIVE_DAYS
    count_unconnected_calls: bool = False
    third_party_only_when_unreachable: bool = True
    unreachable_after_failed_attempts: int = Field(default=3, ge=1)
    third_party_location_only: bool = False  # 0.1 name for third_party_purposes=[location]
    third_party_purposes: list[Purpose] | None = None  # None: any purpose, never disclosing
    third_party_contacts_per_person: int | None = None
    min_visit_collectors: int | None = None
    validation_notice_within: timedelta | None = None
    validation_period: timedelta | None = None
    validation_receipt_business_days: int = 5
    collection_waits_for_validation_notice: bool = False
    electronic_notice_needs_consent: bool = False
    sms_needs_consent: bool = False
    honour_workplace_prohibition: bool = False
    no_email_to_employer_address: bool = False
    dispute_freezes_collection: bool = True
    dispute_freezes_only_written_in_validation_period: bool = False
    opt_out_notice_required: bool = False
    cease_communication_stops_contact: bool = True
    attorney_stops_contact: bool = True
    statute_of_limitations: timedelta | None = None
    statute_of_limitations_by_region: dict[str, timedelta] = Field(default_factory=dict)
    limitation_starts: LimitationStart = LimitationStart.DUE_DATE
    breathing_space: timedelta | None = None
    breathing_space_once_per: timedelta = timedelta(days=365)
    crisis_moratorium_after_treatment: timedelta | None = None
    forbearance_before_legal: bool = False
    forbearance_response: timedelta = timedelta(days=14)
    min_default_notice: timedelta | None = None
    references: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _third_party_purposes(self) -> RulePack:
        if self.third_party_location_only and self.third_party_purposes is None:
            object.__setattr__(self, "third_party_purposes", [Purpose.LOCATION])
        return self

    def ref(self, code: str) -> str:
        return self.references.get(code, f"{self.jurisdiction} policy rule '{code}'")

    def limitation_for(self, region: str) -> timedelta | None:
        """The limitation period of `region` (a US state's own, else the pack's)."""
        return self.statute_of_limitations_by_region.get(region.upper(),
                                                         self.statute_of_limitations)


_ALL_PACKS = {
    "hold": "hardship and crisis holds freeze contact and enforcement (all packs)",
    "bankruptcy": "bankruptcy stops all contact (all packs)",
    "deceased": "deceased borrower: all contact stops (all packs)",
    "opted_out": "borrower opted out of this channel (all packs)",
    "holiday": "no contact on public holidays (policy option)",
    "disclosure": "never disclose the debt to a third party (all packs)",
    "third_party_refused": "a third party who refused is not contacted again (all packs)",
    "validation_notice": "our policy: no collection contact before the validation notice "
                         "has been sent",
    "sms_consent": "our policy: no SMS to the borrower without their recorded consent "
                   "(policy option)",
}

CN = RulePack(
    jurisdiction="CN",
    title="China: GB/T 45251-2025 and CBA collection guideline (2026)",
    contact_hours=ContactHours(start=time(8), end=time(22)),
    max_answered_calls_per_day=3,
    max_unanswered_attempts_per_number_per_day=6,
    third_party_purposes=[Purpose.LOCATION, Purpose.MESSAGE],
    min_visit_collectors=2,
    dispute_freezes_collection=True,
    statute_of_limitations=years(3),
    references={**_ALL_PACKS,
                "hours": "GB/T 45251-2025: no collection contact 22:00-08:00 local time",
                "answered_calls": "GB/T 45251-2025: at most 3 effective calls a day per "
                                  "person",
                "unanswered_attempts": "GB/T 45251-2025: at most 6 unanswered attempts a day "
                                       "per number",
                "third_party": "GB/T 45251-2025: third parties only when the debtor cannot "
                               "be reached, only to obtain contact details or pass on a "
                               "message",
                "visit_collectors": "GB/T 45251-2025: home visits by at least 2 collectors",
                "dispute": "CBA guideline: a disputed debt is verified before collection "
                           "continues",
                "time_barred": "Civil Code art. 188 (3 years) and GB/T 45251-2025: no "
                               "exaggerated legal consequences on a time-barred debt",
                "inconvenient": "borrower-named inconvenient times are honoured"},
)

US = RulePack(
    jurisdiction="US",
    title="United States: FDCPA and CFPB Regulation F (12 CFR 1006)",
    contact_hours=ContactHours(start=time(8), end=time(21), end_inclusive=True),
    hours_in_every_possible_zone=True,
    max_call_attempts=7,
    call_attempt_period=timedelta(days=7),
    quiet_after_conversation=timedelta(days=7),
    third_party_only_when_unreachable=False,  # 1692b: for location, not "only if unreachable"
    third_party_purposes=[Purpose.LOCATION],
    third_party_contacts_per_person=1,
    validation_notice_within=timedelta(days=5),
    validation_period=timedelta(days=30),
    electronic_notice_needs_consent=True,
    honour_workplace_prohibition=True,
    no_email_to_employer_address=True,
    dispute_freezes_collection=True,
    dispute_freezes_only_written_in_validation_period=True,
    opt_out_notice_required=True,
    statute_of_limitations=years(3),
    statute_of_limitations_by_region=US_WRITTEN_CONTRACTS,
    references={**_ALL_PACKS,
                "hours": "12 CFR 1006.6(b)(1)(i): no contact before 8:00 a.m. or after "
                         "9:00 p.m. local time, in every place the consumer may be "
                         "(comment 6(b)(1)(i)-1)",
                "inconvenient": "12 CFR 1006.6(b)(1)(i): times the consumer names as "
                                "inconvenient",
                "workplace": "12 CFR 1006.6(b)(3): no communication at the place of "
                             "employment when the employer prohibits it",
                "employer_email": "12 CFR 1006.22(f)(3): no email to an address the "
                                  "employer provided",
                "call_frequency": "12 CFR 1006.14(b)(2)(i)(A): more than 7 calls within 7 "
                                  "consecutive days to a person",
                "after_conversation": "12 CFR 1006.14(b)(2)(i)(B): no call within 7 "
                                      "consecutive days after a telephone conversation",
                "esign_consent": "12 CFR 1006.42(b): an electronic validation notice needs "
                                 "E-SIGN consent",
                "sms_consent": "47 USC 227(b)(1)(A)(iii) (TCPA): prior express consent to "
                               "texts to a mobile number; our policy requires it recorded",
                "undeliverable": "12 CFR 1006.42(a): a notice known not to be delivered "
                                 "goes another way",
                "dispute": "12 CFR 1006.38(d)(2): a written dispute within the validation "
                           "period stops collection until verification is sent",
                "opted_out": "12 CFR 1006.14(h)(1): a consumer may restrict a medium of "
                             "communication; 1006.6(e) opt-out honoured",
                "cease": "15 USC 1692c(c): cease communication on written request",
                "attorney": "15 USC 1692c(a)(2): no contact once an attorney represents "
                            "the consumer",
                "third_party": "15 USC 1692b / 12 CFR 1006.10(b): third parties only for "
                               "location information",
                "third_party_once": "15 USC 1692b(3) / 12 CFR 1006.10(c): a third party at "
                                    "most once, unless asked or the answer was wrong",
                "time_barred": "12 CFR 1006.26(b): no suit or threat of suit on "
                               "time-barred debt"},
)

GB = RulePack(
    jurisdiction="GB",
    title="United Kingdom: FCA CONC 7 and the Debt Respite Scheme",
    contact_hours=ContactHours(start=time(8), end=time(21)),
    third_party_purposes=[Purpose.LOCATION, Purpose.MESSAGE],
    breathing_space=timedelta(days=60),
    breathing_space_once_per=timedelta(days=365),
    crisis_moratorium_after_treatment=timedelta(days=30),
    forbearance_before_legal=True,
    min_default_notice=timedelta(days=14),
    dispute_freezes_collection=True,
    statute_of_limitations=years(6),
    references={**_ALL_PACKS,
                "hours": "CONC 7.9.4R: no contact at unreasonable times (08:00-21:00)",
                "inconvenient": "CONC 7.9.4R: times the customer names as unreasonable",
                "hold": "Debt Respite Scheme Regulations 2020 reg 7 (standard), regs 28-32 "
                        "(mental health crisis); CONC 7.10.1R (capacity): contact and "
                        "enforcement freeze",
                "forbearance": "CONC 7.3.4R: forbearance before enforcement",
                "default_notice": "Consumer Credit Act 1974 s88: at least 14 days to remedy "
                                  "after a default notice",
                "dispute": "CONC 7.14: a disputed debt is not pursued until evidence is "
                           "provided",
                "time_barred": "Limitation Act 1980 s5 (6 years) and CONC 7.15: no threat "
                               "of court action on a statute-barred debt",
                "third_party": "CONC 7.9: no disclosure of the debt to third parties"},
)

DEFAULT = RulePack(
    jurisdiction="*",
    title="Default: reasonable hours, opt-outs, disputes and holds",
    third_party_purposes=[Purpose.LOCATION, Purpose.MESSAGE],
    references={**_ALL_PACKS,
                "hours": "default: no contact outside 08:00-21:00 local time",
                "inconvenient": "default: borrower-named inconvenient times",
                "dispute": "default: disputed debts are verified before collection",
                "third_party": "default: third parties only when the debtor is unreachable"},
)

PACKS = {"CN": CN, "US": US, "GB": GB}


MERGED = ("statute_of_limitations_by_region",)
"""Parameters whose overrides are merged into the pack's table, not put in its place."""


def pack_for(jurisdiction: str, overrides: dict[str, dict[str, Any]] | None = None) -> RulePack:
    """The pack for an ISO 3166 code (subdivisions use their country's pack), with a
    policy's overrides for that country (or for `*`) applied and validated."""
    country = jurisdiction.split("-")[0].upper()
    base = PACKS.get(country, DEFAULT)
    changes = {**(overrides or {}).get("*", {}), **(overrides or {}).get(country, {})}
    if not changes:
        return base if base is not DEFAULT else DEFAULT.model_copy(update={
            "jurisdiction": country})
    data = {**base.model_dump(), **changes}
    if changes.get("third_party_location_only") and "third_party_purposes" not in changes:
        data["third_party_purposes"] = [Purpose.LOCATION]  # the 0.1 name still means it
    for name in MERGED:  # a policy names the regions it changes; the rest keep the law's
        if isinstance(changes.get(name), dict):
            data[name] = {**getattr(base, name), **{k.upper(): v for k, v in
                                                    changes[name].items()}}
    if base is DEFAULT:
        data["jurisdiction"] = country
    return RulePack.model_validate(data)


class Parameter(NamedTuple):
    """What a pack parameter belongs to: the rule (and so the legal reference) it is part
    of, and which way of changing it makes the pack stricter ('' = neither: a value)."""

    rule: str
    stricter: str


PARAMETERS: dict[str, Parameter] = {
    "contact_hours": Parameter("hours", ""),
    "hours_in_every_possible_zone": Parameter("hours", "true"),
    "no_contact_on_public_holidays": Parameter("holiday", "true"),
    "honour_inconvenient_times": Parameter("inconvenient", "true"),
    "max_answered_calls_per_day": Parameter("answered_calls", "lower"),
    "max_unanswered_attempts_per_number_per_day": Parameter("unanswered_attempts", "lower"),
    "max_call_attempts": Parameter("call_frequency", "lower"),
    "call_attempt_period": Parameter("call_frequency", "higher"),
    "quiet_after_conversation": Parameter("after_conversation", "higher"),
    "call_window": Parameter("call_frequency", "rolling"),
    "count_unconnected_calls": Parameter("call_frequency", "true"),
    "third_party_only_when_unreachable": Parameter("third_party", "true"),
    "unreachable_after_failed_attempts": Parameter("third_party", "higher"),
    "third_party_purposes": Parameter("third_party", "fewer"),
    "third_party_contacts_per_person": Parameter("third_party_once", "lower"),
    "min_visit_collectors": Parameter("visit_collectors", "higher"),
    "validation_notice_within": Parameter("validation_notice", "lower"),
    "validation_period": Parameter("dispute", "higher"),
    "validation_receipt_business_days": Parameter("dispute", "higher"),
    "collection_waits_for_validation_notice": Parameter("validation_notice", "true"),
    "electronic_notice_needs_consent": Parameter("esign_consent", "true"),
    "sms_needs_consent": Parameter("sms_consent", "true"),
    "honour_workplace_prohibition": Parameter("workplace", "true"),
    "no_email_to_employer_address": Parameter("employer_email", "true"),
    "dispute_freezes_collection": Parameter("dispute", "true"),
    "dispute_freezes_only_written_in_validation_period": Parameter("dispute", "false"),
    "opt_out_notice_required": Parameter("opted_out", "true"),
    "cease_communication_stops_contact": Parameter("cease", "true"),
    "attorney_stops_contact": Parameter("attorney", "true"),
    "statute_of_limitations": Parameter("time_barred", "lower"),
    "statute_of_limitations_by_region": Parameter("time_barred", "per_region_lower"),
    "limitation_starts": Parameter("time_barred", "due_date"),
    "breathing_space": Parameter("hold", "higher"),
    "breathing_space_once_per": Parameter("hold", ""),
    "crisis_moratorium_after_treatment": Parameter("hold", "higher"),
    "forbearance_before_legal": Parameter("forbearance", "true"),
    "forbearance_response": Parameter("forbearance", "higher"),
    "min_default_notice": Parameter("default_notice", "higher"),
}
"""Every pack parameter a policy may change, with its rule and its stricter direction."""


def _direction(name: str, law: Any, ours: Any) -> str:
    way = PARAMETERS[name].stricter if name in PARAMETERS else None
    if way == "per_region_lower":  # stricter when every region's period is no longer
        longer = [r for r, v in ours.items() if r not in law or v > law[r]]
        shorter = [r for r, v in law.items() if r not in ours or ours[r] < v]
        return "looser" if longer else ("stricter" if shorter else "different")
    if way in ("true", "false", "rolling", "due_date"):
        return "stricter" if str(ours).lower() == way else "looser"
    if way == "fewer":  # a list of what is allowed; None allows anything
        if ours is None or law is None:
            return "stricter" if law is None and ours is not None else (
                "looser" if ours is None and law is not None else "different")
        return "stricter" if set(ours) < set(law) else (
            "looser" if set(ours) > set(law) else "different")
    if way in ("lower", "higher"):
        if law is None or ours is None:  # None: no such limit or protection at all
            return "stricter" if ours is not None else "looser"
        return "stricter" if (ours < law) == (way == "lower") else "looser"
    return "different"


def departures(jurisdiction: str, overrides: dict[str, dict[str, Any]] | None
               ) -> list[dict[str, Any]]:
    """Where a policy's overrides depart from the law of `jurisdiction`'s pack: each
    parameter with the law's value, the policy's, and whether it is stricter or looser."""
    country = jurisdiction.split("-")[0].upper()
    law = PACKS.get(country, DEFAULT)
    ours = pack_for(jurisdiction, overrides)
    out = []
    for name in RulePack.model_fields:
        if name in ("jurisdiction", "references", "third_party_location_only"):
            continue
        before, after = getattr(law, name), getattr(ours, name)
        if isinstance(before, dict) and isinstance(after, dict):  # only what changed
            changed = {k for k in {*before, *after} if before.get(k) != after.get(k)}
            before = {k: v for k, v in before.items() if k in changed}
            after = {k: v for k, v in after.items() if k in changed}
        if before != after:
            out.append({"parameter": name, "law": _show(before), "policy": _show(after),
                        "direction": _direction(name, before, after)})
    return out


def _show(value: Any) -> Any:
    if isinstance(value, dict) and value and all(isinstance(v, timedelta)
                                                 for v in value.values()):
        return {k: _show(v) for k, v in value.items()}
    if isinstance(value, timedelta):
        return f"{value.days} days" if not value.seconds else str(value)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [str(v) for v in value]
    return value
