"""Outbound events on their way to platforms' webhooks: posting them, and the dispatcher
that works through the outbox (duecourse.store.outbox)."""
