"""Payments that close the loop (issue 15 item 3): a provider adapter contract
(`duecourse.payments.base`), the embedded sandbox provider, a Stripe Checkout profile, the
provider_payments ledger and the daily reconciliation."""
