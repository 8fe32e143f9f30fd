"""Spans keep their trace ids and propagation whether or not they are recorded; they are
recorded only when there is an exporter to send them to."""

from __future__ import annotations

import pytest
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commerce_services.runtime.tracing import tracer_provider


@pytest.mark.parametrize("exporting", [False, True], ids=["no exporter", "exporter"])
def test_a_trace_id_travels_to_the_next_service_recorded_or_not(exporting: bool) -> None:
    exporter = InMemorySpanExporter() if exporting else None
    provider = tracer_provider("order", exporter)
    tracer = provider.get_tracer(__name__)
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("POST /api/v1/orders") as span:
        assert span.get_span_context().is_valid
        assert span.is_recording() is exporting
        inject(carrier)
    with tracer.start_as_current_span("order_created process", context=extract(carrier)) as child:
        assert child.get_span_context().trace_id == span.get_span_context().trace_id
        assert child.is_recording() is exporting
    provider.shutdown()
    if exporter is not None:
        assert [s.name for s in exporter.get_finished_spans()] == [
            "POST /api/v1/orders",
            "order_created process",
        ]
