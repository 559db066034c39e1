"""duecourse: a loan collection engine on Temporal.

One durable workflow per overdue loan walks it through reminder, negotiation and
legal stages; activities send messages and record every outcome in a SQL ledger.
"""

__version__ = "0.5.0"
