"""The SQL ledger: every contact, payment, promise, transition and decision, provably.

SQLite by default, PostgreSQL in production; schema owned by Alembic migrations.
"""

from duecourse.store.database import connect, migrate
from duecourse.store.ledger import Ledger

__all__ = ["Ledger", "connect", "migrate"]
