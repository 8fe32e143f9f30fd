"""Service settings from the environment: secrets without defaults, validated values, and the
entry point's answer to a bad configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from commerce_services.order.main import main as order_main
from commerce_services.order.settings import OrderSettings

REQUIRED = {
    "ORDER_DB_HOST": "127.0.0.1",
    "ORDER_DB_NAME": "commerce_order",
    "ORDER_DB_USER": "order_svc",
    "ORDER_DB_PASSWORD": "from-a-secret",
    "ORDER_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "ORDER_USER_GRPC_TARGET": "user:50051",
    "ORDER_PRODUCT_GRPC_TARGET": "product:50051",
    "ORDER_AUTH_ISSUER": "http://user:8080",
    "ORDER_AUTH_JWKS_URL": "http://user:8080/api/v1/auth/jwks.json",
    "ORDER_GRPC_TLS_CERT": "-----BEGIN CERTIFICATE-----",
    "ORDER_GRPC_TLS_KEY": "-----BEGIN PRIVATE KEY-----",
    "ORDER_GRPC_TLS_CA": "-----BEGIN CERTIFICATE-----",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(
    ("currency", "accepted"),
    [("EUR", True), ("JPY", True), ("USD", True), ("KWD", False), ("EURO", False), ("eur", False)],
)
def test_the_order_currency_must_fit_two_decimals(
    environment: pytest.MonkeyPatch, currency: str, accepted: bool
) -> None:
    environment.setenv("ORDER_CURRENCY", currency)
    if accepted:
        assert OrderSettings().currency == currency  # type: ignore[call-arg]
    else:
        with pytest.raises(ValidationError, match="currency"):
            OrderSettings()  # type: ignore[call-arg]


@pytest.mark.parametrize("missing", ["ORDER_DB_PASSWORD", "ORDER_USER_GRPC_TARGET"])
def test_secrets_and_addresses_have_no_default(
    environment: pytest.MonkeyPatch, missing: str
) -> None:
    environment.delenv(missing)
    with pytest.raises(ValidationError, match=missing.removeprefix("ORDER_").lower()):
        OrderSettings()  # type: ignore[call-arg]


def test_a_bad_configuration_exits_2_and_names_the_setting(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("ORDER_DEADLINE_S", "soon")
    assert order_main(["serve"]) == 2
    out = capsys.readouterr().out
    assert "invalid ORDER_* configuration" in out
    assert "deadline_s" in out
    assert "from-a-secret" not in out  # the password is never printed
