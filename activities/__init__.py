"""Temporal activities: thin, idempotent adapters between workflows and the outside world."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from duecourse.activities.ledger import LedgerActivities
from duecourse.activities.legal import LegalActivities
from duecourse.activities.messaging import MessagingActivities
from duecourse.activities.scoring import ScoringActivities, load_scorer
from duecourse.activities.supervision import await_workflow
from duecourse.channels import Channel
from duecourse.portal.links import PortalLinks
from duecourse.store.ledger import Ledger


def build_activities(ledger: Ledger, channel: Channel, lender_name: str,
                     lender_contact: str,
                     scorer: str = "duecourse.domain.scoring:scorecard",
                     legal_partner: str = "legal-partner@lender.example",
                     portal: PortalLinks | None = None,
                     ) -> list[Callable[..., Any]]:
    """Every activity the collection workflows call, bound to their adapters (outbound
    events need none: the ledger queues them and the worker's dispatcher posts them);
    `portal` puts the borrower's page link in their messages (None: no portal key)."""
    score_with = load_scorer(scorer)
    records = LedgerActivities(ledger, score_with)
    messaging = MessagingActivities(ledger, channel, lender_name, lender_contact, portal)
    scoring = ScoringActivities(score_with)
    legal = LegalActivities(ledger, channel, legal_partner)
    return [records.open_loan, records.record_entries, records.alert_ops,
            messaging.send_message, messaging.settle_send, scoring.score_loan,
            legal.refer_to_partner, await_workflow]
