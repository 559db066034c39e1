"""Rule packs: each jurisdiction's contact rules as data, with their legal references.

Defaults follow shared/domain/collections-reference.md. A policy overrides any parameter
per jurisdiction (`Policy.compliance`), e.g. `{US: {max_call_attempts: 5}}`.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from duecourse.domain.policy import ContactHours


class RulePack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    jurisdiction: str
    title: str
    contact_hours: ContactHours | None = ContactHours()
    no_contact_on_public_holidays: bool = False
    honour_inconvenient_times: bool = True
    max_answered_calls_per_day: int | None = None
    max_unanswered_attempts_per_number_per_day: int | None = None
    max_call_attempts: int | None = None
    call_attempt_period: timedelta = timedelta(days=7)
    quiet_after_conversation: timedelta | None = None
    third_party_only_when_unreachable: bool = True
    unreachable_after_failed_attempts: int = 3
    third_party_location_only: bool = False
    min_visit_collectors: int | None = None
    validation_notice_within: timedelta | None = None
    validation_period: timedelta | None = None
    dispute_freezes_collection: bool = True
    opt_out_notice_required: bool = False
    cease_communication_stops_contact: bool = True
    attorney_stops_contact: bool = True
    statute_of_limitations: timedelta | None = None
    breathing_space: timedelta | None = None
    breathing_space_once_per: timedelta = timedelta(days=365)
    forbearance_before_legal: bool = False
    forbearance_response: timedelta = timedelta(days=14)
    min_default_notice: timedelta | None = None
    references: dict[str, str] = Field(default_factory=dict)

    def ref(self, code: str) -> str:
        return self.references.get(code, f"{self.jurisdiction} policy rule '{code}'")


_ALL_PACKS = {
    "hold": "hardship / respite holds freeze contact (all packs)",
    "bankruptcy": "bankruptcy stops all contact (all packs)",
    "deceased": "deceased borrower: all contact stops (all packs)",
    "opted_out": "borrower opted out of this channel (all packs)",
    "holiday": "no contact on public holidays (policy option)",
    "disclosure": "never disclose the debt to a third party (all packs)",
    "third_party_refused": "a third party who refused is not contacted again (all packs)",
}

CN = RulePack(
    jurisdiction="CN",
    title="China: GB/T 45251-2025 and CBA collection guideline (2026)",
    contact_hours=ContactHours(start=time(8), end=time(22)),
    max_answered_calls_per_day=3,
    max_unanswered_attempts_per_number_per_day=6,
    min_visit_collectors=2,
    dispute_freezes_collection=True,
    references={**_ALL_PACKS,
                "hours": "GB/T 45251-2025: no collection contact 22:00-08:00 local time",
                "answered_calls": "GB/T 45251-2025: at most 3 effective calls a day per debtor",
                "unanswered_attempts": "GB/T 45251-2025: at most 6 unanswered attempts a day "
                                       "per number",
                "third_party": "GB/T 45251-2025: third parties only when the debtor cannot "
                               "be reached",
                "visit_collectors": "GB/T 45251-2025: home visits by at least 2 collectors",
                "dispute": "CBA guideline: a disputed debt is verified before collection "
                           "continues",
                "inconvenient": "borrower-named inconvenient times are honoured"},
)

US = RulePack(
    jurisdiction="US",
    title="United States: FDCPA and CFPB Regulation F (12 CFR 1006)",
    contact_hours=ContactHours(start=time(8), end=time(21)),
    max_call_attempts=7,
    call_attempt_period=timedelta(days=7),
    quiet_after_conversation=timedelta(days=7),
    third_party_location_only=True,
    validation_notice_within=timedelta(days=5),
    validation_period=timedelta(days=30),
    dispute_freezes_collection=True,
    opt_out_notice_required=True,
    statute_of_limitations=timedelta(days=3 * 365),
    references={**_ALL_PACKS,
                "hours": "12 CFR 1006.6(b)(1)(i): no contact before 08:00 or after 21:00",
                "inconvenient": "12 CFR 1006.6(b)(1)(i): times the consumer names as "
                                "inconvenient",
                "call_frequency": "12 CFR 1006.14(b)(2)(i): more than 7 calls in 7 days",
                "after_conversation": "12 CFR 1006.14(b)(2)(ii): no call within 7 days "
                                      "after a conversation",
                "validation_notice": "12 CFR 1006.34: validation notice within 5 days of "
                                     "the first communication",
                "dispute": "12 CFR 1006.38(d)(2): collection stops on a dispute until "
                           "verification is sent",
                "opted_out": "12 CFR 1006.6(d)(4)-(e): opt-out honoured per channel",
                "cease": "15 USC 1692c(c): cease communication on written request",
                "attorney": "15 USC 1692c(a)(2): no contact once an attorney represents "
                            "the consumer",
                "third_party": "15 USC 1692b / 1006.10: third parties only for location "
                               "information",
                "time_barred": "12 CFR 1006.26(b): no suit or threat of suit on "
                               "time-barred debt"},
)

GB = RulePack(
    jurisdiction="GB",
    title="United Kingdom: FCA CONC 7 and the Debt Respite Scheme",
    contact_hours=ContactHours(start=time(8), end=time(21)),
    breathing_space=timedelta(days=60),
    breathing_space_once_per=timedelta(days=365),
    forbearance_before_legal=True,
    min_default_notice=timedelta(days=14),
    dispute_freezes_collection=True,
    references={**_ALL_PACKS,
                "hours": "CONC 7.9.4R: no contact at unreasonable times (08:00-21:00)",
                "inconvenient": "CONC 7.9.4R: times the customer names as unreasonable",
                "hold": "Debt Respite Scheme Regulations 2020: breathing space freezes "
                        "contact and enforcement",
                "forbearance": "CONC 7.3.4R: forbearance before enforcement",
                "default_notice": "Consumer Credit Act 1974 s88: at least 14 days to remedy "
                                  "after a default notice",
                "dispute": "CONC 7.14: a disputed debt is not pursued until evidence is "
                           "provided",
                "third_party": "CONC 7.9: no disclosure of the debt to third parties"},
)

DEFAULT = RulePack(
    jurisdiction="*",
    title="Default: reasonable hours, opt-outs, disputes and holds",
    references={**_ALL_PACKS,
                "hours": "default: no contact outside 08:00-21:00 local time",
                "inconvenient": "default: borrower-named inconvenient times",
                "dispute": "default: disputed debts are verified before collection",
                "third_party": "default: third parties only when the debtor is unreachable"},
)

PACKS = {"CN": CN, "US": US, "GB": GB}


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
    if base is DEFAULT:
        data["jurisdiction"] = country
    return RulePack.model_validate(data)
