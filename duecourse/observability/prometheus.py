"""The Temporal runtime that serves a worker's metrics for Prometheus: the SDK's own series
and the duecourse_ business series emitted through its metric meter."""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


class MetricsAddressError(ValueError):
    """The metrics address cannot be served; the message names the setting to fix."""


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving the worker's metrics (SDK and business metrics, such as
    loans needing attention) for Prometheus at `address`."""
    try:
        return Runtime(telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:  # the SDK's "Failed starting Prometheus exporter: ..."
        raise MetricsAddressError(
            f"cannot serve metrics on {address} ({err}): set DUECOURSE_METRICS_ADDRESS to a "
            "free host:port (`duecourse dev`: --metrics-port, 0 for none)") from None
