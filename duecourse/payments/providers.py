"""The payment provider these settings name (none, the sandbox or Stripe)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from duecourse.payments.base import PaymentProvider, ledger_reference
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
        if not settings.payment_sandbox_allowed and not is_loopback(settings.public_url):
            raise PaymentSettingsError(
                "payment_provider is sandbox, a pretend provider that takes no money, and "
                f"public_url ({settings.public_url}) is not a loopback address: use a real "
                "provider, or set payment_sandbox_allowed (DUECOURSE_PAYMENT_SANDBOX_ALLOWED"
                "=true) for a shared demo")
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


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine (localhost, 127.0.0.0/8, ::1): only its user can
    reach a sandbox served there."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reserved_reference(settings: Settings, reference: str) -> str | None:
    """Why a platform may not report a payment with `reference` (None: it may): references
    in the configured provider's form (`<provider>:...`) belong to its webhook. A platform
    report under one would make the provider's real webhook a duplicate, and the loan would
    keep the platform's amount instead of the amount taken."""
    if settings.payment_provider == "none":
        return None
    prefix = ledger_reference(settings.payment_provider, "")
    if not reference.startswith(prefix):
        return None
    return (f"payment references starting with {prefix!r} are reserved for the "
            f"{settings.payment_provider} payment provider's webhook; report this payment "
            "under a reference of your own")
