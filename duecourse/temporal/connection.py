"""Connecting to Temporal: one function every client and worker in the project uses, so
each one seals payloads with the same codec, carries the same interceptors and reaches
the server the same settings name.

Where and how to connect follows Temporal's environment configuration (TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_GRPC_META_*, a
TEMPORAL_PROFILE in TEMPORAL_CONFIG_FILE; see duecourse.temporal.environment and
docs/connecting.md), so a dev server, an mTLS cluster and Temporal Cloud differ in
settings only. An unusable setting raises TemporalConfigError naming it, before any
network call.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from duecourse.observability.tracing import temporal_interceptors
from duecourse.security.payload_keys import KeyRing, ring_from_settings
from duecourse.settings import Settings
from duecourse.temporal.converter import sealed_data_converter
from duecourse.temporal.environment import ConnectOptions, TemporalConfigError, connect_options

__all__ = ["TemporalConfigError", "connect", "options_for"]


def options_for(settings: Settings, address: str | None = None) -> ConnectOptions:
    """The connect options for `settings`; `address` is a server this process started
    itself (a dev server), reached plainly: the configured TLS, API key and metadata are
    for the configured server only."""
    if address:
        return connect_options(address, settings.temporal_namespace, configured=False)
    return connect_options(settings.temporal_address, settings.temporal_namespace)


async def connect(settings: Settings, *, address: str | None = None,
                  runtime: Runtime | None = None, ring: KeyRing | None = None) -> Client:
    """A client for `settings` (`address` overrides where the server is, e.g. a dev server
    just started); `ring` defaults to the configured payload keys."""
    options = options_for(settings, address)
    return await Client.connect(
        options.target_host, namespace=options.namespace, api_key=options.api_key,
        tls=options.tls, rpc_metadata=options.rpc_metadata,
        data_converter=sealed_data_converter(ring or ring_from_settings(settings)),
        interceptors=temporal_interceptors(settings), runtime=runtime)
