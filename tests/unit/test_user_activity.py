"""When an order records an account's activity (user/model.py): at most hourly."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from commerce_services.user.model import activity_to_stamp

NOW = datetime(2026, 12, 3, 12, 0)


@pytest.mark.parametrize(
    ("age", "stamp"),
    [
        (timedelta(0), False),
        (timedelta(minutes=59, seconds=59), False),
        (timedelta(hours=1), True),
        (timedelta(days=181), True),
        (-timedelta(minutes=5), False),  # another replica's clock ran ahead: no write
    ],
)
def test_an_order_records_activity_when_the_last_record_is_an_hour_old(
    age: timedelta, stamp: bool
) -> None:
    assert activity_to_stamp(NOW - age, NOW) is stamp
