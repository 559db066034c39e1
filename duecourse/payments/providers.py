"""The payment provider these settings name (none, the sandbox or Stripe)."""

from __future__ import annotations

from duecourse.payments.base import PaymentProvider
from duecourse.payments.sandbox import SandboxProvider
from duecourse.payments.stripe_profile import StripeProvider
from duecourse.portal.tokens import ensure_secret_file
from duecourse.settings import Settings

SANDBOX_SECRET_FILE = "sandbox-pay-secret"
SANDBOX_BOOKS_FILE = "sandbox-pay.jsonl"


class PaymentSettingsError(ValueError):
    """A payment setting that cannot work, named."""


def provider_from_settings(settings: Settings) -> PaymentProvider | None:
    """The configured provider; None when payments are off (the page offers no payment)."""
    secret = settings.payment_webhook_secret.get_secret_value() \
        if settings.payment_webhook_secret else ""
    if settings.payment_provider == "sandbox":
        data = settings.data_dir.expanduser()
        if not secret:
            path = data / SANDBOX_SECRET_FILE
            ensure_secret_file(path)
            secret = path.read_text(encoding="ascii").strip()
        return SandboxProvider(secret.encode(), settings.public_url, data / SANDBOX_BOOKS_FILE)
    if settings.payment_provider == "stripe":
        key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
        if not key:
            raise PaymentSettingsError("payment_provider is stripe and stripe_api_key "
                                       "(DUECOURSE_STRIPE_API_KEY) is not set")
        if not secret:
            raise PaymentSettingsError(
                "payment_provider is stripe and payment_webhook_secret "
                "(DUECOURSE_PAYMENT_WEBHOOK_SECRET, the endpoint's whsec_ secret) is not set")
        return StripeProvider(key, secret, settings.stripe_api_base)
    return None
