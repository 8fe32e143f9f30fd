"""JSON logs on stdout, one object per line, so a cluster's log pipeline can parse them."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from commerce_services.runtime.tracing import TraceIdFilter


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(TraceIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
