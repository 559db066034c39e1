"""Connecting to Temporal: one function every client and worker in the project uses, so
each one seals payloads with the same codec and carries the same interceptors.

PLACEHOLDER (H3 owns this module): connection settings from temporalio.envconfig.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from duecourse.observability.tracing import temporal_interceptors
from duecourse.security.payload_keys import KeyRing, ring_from_settings
from duecourse.settings import Settings
from duecourse.temporal.converter import sealed_data_converter


async def connect(settings: Settings, *, address: str | None = None,
                  runtime: Runtime | None = None, ring: KeyRing | None = None) -> Client:
    """A client for `settings` (`address` overrides where the server is, e.g. a dev server
    just started); `ring` defaults to the configured payload keys."""
    return await Client.connect(
        address or settings.temporal_address, namespace=settings.temporal_namespace,
        data_converter=sealed_data_converter(ring or ring_from_settings(settings)),
        interceptors=temporal_interceptors(settings), runtime=runtime)
