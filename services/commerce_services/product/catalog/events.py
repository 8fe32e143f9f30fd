"""The catalog's change event (pure): `product_changed`, one per committed product version, in
the product service's outbox (topic `commerce.product.events`, keyed by product id, so one
product's events keep their order). It names the version, not its content: a consumer reads
revision `<product_id>:<version>` by key, or deletes the product when `deleted`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commerce_services.events.outbox import OutboxEvent
from commerce_services.product.catalog.model import PRODUCT_ID

AGGREGATE = "product"
PRODUCT_CHANGED = "product_changed"


class MalformedChange(ValueError):
    pass


@dataclass(frozen=True)
class ProductChanged:
    product_id: str
    version: int
    deleted: bool
    updated_at: datetime  # naive UTC, the revision's

    @property
    def revision_id(self) -> str:
        return f"{self.product_id}:{self.version}"

    def outbox_event(self) -> OutboxEvent:
        return OutboxEvent(
            AGGREGATE,
            self.product_id,
            PRODUCT_CHANGED,
            {
                "product_id": self.product_id,
                "version": self.version,
                "deleted": self.deleted,
                "updated_at": self.updated_at.replace(tzinfo=UTC).isoformat(),
            },
        )

    @classmethod
    def of(cls, payload: dict[str, Any]) -> ProductChanged:
        """MalformedChange unless the payload is one this module wrote."""
        product_id, version = payload.get("product_id"), payload.get("version")
        deleted, updated_at = payload.get("deleted"), payload.get("updated_at")
        if not isinstance(product_id, str) or not PRODUCT_ID.fullmatch(product_id):
            raise MalformedChange("product_changed without a product id")
        if type(version) is not int or version < 1 or not isinstance(deleted, bool):
            raise MalformedChange(f"product_changed of {product_id} without version or deleted")
        try:
            moment = datetime.fromisoformat(str(updated_at))
        except ValueError as exc:
            raise MalformedChange(f"product_changed of {product_id}: updated_at") from exc
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return cls(product_id, version, deleted, moment)
