"""OpenTelemetry tracing for a service process.

Spans always get real trace ids (W3C trace context travels over HTTP, gRPC, the outbox row and
the Kafka headers, so one order's saga is one trace, and log lines carry its id); they are
recorded and exported only when an OTLP endpoint is configured, e.g. a collector in the
cluster. Without one a span is the SDK's non-recording span: the same ids and propagation,
none of the attributes, timings and end-of-span processing nobody would receive (too little to
show in the order benchmark: docs/benchmarks/order-throughput-profile.md).
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased


def configure_tracing(service: str, otlp_endpoint: str | None) -> None:
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint) if otlp_endpoint else None
    trace.set_tracer_provider(tracer_provider(service, exporter))


def tracer_provider(service: str, exporter: SpanExporter | None) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"commerce-{service}"}),
        # The SDK's default (record, unless the caller's trace is not sampled) with an
        # exporter; nothing recorded without one.
        sampler=ParentBased(ALWAYS_ON) if exporter is not None else ALWAYS_OFF,
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class TraceIdFilter(logging.Filter):
    """Adds `trace_id` to every log record written inside a span."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = current_trace_id()
        if trace_id is not None:
            record.trace_id = trace_id
        return True
