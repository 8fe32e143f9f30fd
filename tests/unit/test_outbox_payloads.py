from __future__ import annotations

import json
from decimal import Decimal

import pytest

from commerce_services.contracts import OutboxConnectorSettings, outbox_connector_config
from commerce_services.events.envelope import MalformedEvent, decode
from commerce_services.events.outbox import encode_payload


def test_money_travels_as_decimal_strings_and_floats_are_refused() -> None:
    assert json.loads(encode_payload({"total": Decimal("19.99")})) == {"total": "19.99"}
    with pytest.raises(TypeError, match="floats"):
        encode_payload({"total": 19.99})
    with pytest.raises(TypeError):
        encode_payload({"when": object()})


SPEC = OutboxConnectorSettings(
    name="order-outbox",
    database_host="db",
    database_port=3306,
    database_user="debezium",
    database_password="${file:/mnt/secrets/db.properties:password}",
    database="commerce_order",
    server_id=184054,
    bootstrap_servers="kafka:9092",
)


def test_connector_routes_by_aggregate_and_keeps_the_secret_a_reference() -> None:
    config = outbox_connector_config(SPEC)
    assert config["table.include.list"] == "commerce_order.outbox"
    assert config["transforms.outbox.route.topic.replacement"] == "commerce.${routedByValue}.events"
    assert config["transforms.outbox.table.field.event.key"] == "aggregateid"
    assert (
        "traceparent:header:traceparent"
        in config["transforms.outbox.table.fields.additional.placement"]
    )
    assert config["database.password"].startswith("${file:")
    assert all(isinstance(v, str) for v in config.values())


@pytest.mark.parametrize("server_id", [0, -1, 2**32])
def test_server_id_must_fit(server_id: int) -> None:
    with pytest.raises(ValueError, match="server_id"):
        outbox_connector_config(
            OutboxConnectorSettings(**{**SPEC.__dict__, "server_id": server_id})
        )


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ([("eventType", b"order_created")], b"{}"),  # no id
        ([("id", b"e1")], b"{}"),  # no type
        ([("id", b"e1"), ("eventType", b"t")], b"not json"),
        ([("id", b"e1"), ("eventType", b"t")], b"[1, 2]"),
        ([("id", b"e1"), ("eventType", b"t")], None),
    ],
)
def test_malformed_records_are_recognised(
    headers: list[tuple[str, bytes]], value: bytes | None
) -> None:
    with pytest.raises(MalformedEvent):
        decode("t", 0, 0, b"k", value, headers)


def test_quoted_and_plain_headers_and_null_values_decode_alike() -> None:
    quoted = decode("t", 0, 5, b"k", b'{"a": 1}', [("id", b'"e1"'), ("eventType", b'"x"')])
    plain = decode(
        "t",
        0,
        5,
        b"k",
        b'"{\\"a\\": 1}"',
        [("id", b"e1"), ("eventType", b"x"), ("traceparent", None)],
    )
    assert (quoted.event_id, quoted.event_type, quoted.payload) == ("e1", "x", {"a": 1})
    assert (plain.event_id, plain.event_type, plain.payload) == ("e1", "x", {"a": 1})
    assert "traceparent" not in plain.headers
