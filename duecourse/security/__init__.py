"""Protecting borrower data where it leaves the ledger: payload encryption for Temporal."""
