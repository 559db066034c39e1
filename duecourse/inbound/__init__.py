"""What comes back from the providers: SMS replies, delivery receipts, email bounces - how
their posts are verified, read, stored and acted on (the API's /v1/inbound routes)."""
