"""Pure domain: models, money, calendars, policy, collection state and planning.

Nothing here does I/O or reads the clock, so workflows can import it safely and tests
can exercise it without Temporal or a database.
"""
