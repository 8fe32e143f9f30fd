"""REST routes of the catalog: /api/v1/products and /api/v1/categories/{id}/products.

Writes answer with an ETag of the product version; PUT and DELETE honour If-Match: a version
other than the stored one is 412 `version_conflict` (409 with the same code when, without
If-Match, concurrent writers kept the write from landing). A price in a currency the shop does
not sell (PRODUCT_CURRENCIES) is refused with 422 `currency_not_sold`: no order could buy it.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from commerce_services.product.catalog.model import (
    ATTRIBUTE_NAME,
    INT64,
    MAX_ATTRIBUTE_TEXT,
    MAX_ATTRIBUTES,
    MAX_BRAND,
    MAX_CATEGORIES,
    MAX_CATEGORY_ID,
    MAX_DESCRIPTION,
    MAX_IMAGES,
    MAX_TITLE,
    MAX_URL,
    MAX_VARIANT_ATTRIBUTES,
    MAX_VARIANTS,
    AttributeValue,
    DuplicateSku,
    InvalidCursor,
    InvalidIfMatch,
    InvalidProduct,
    InvalidProductId,
    ListingQuery,
    Product,
    ProductContent,
    ProductNotFound,
    UnknownCategory,
    Variant,
    VersionConflict,
    decode_cursor,
    encode_cursor,
    etag,
    parse_if_match,
    parse_price,
    validate_content,
)
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.model import CategoryNotFound
from commerce_services.product.inventory.model import SKU_PATTERN
from commerce_services.web.errors import ApiError
from commerce_services.web.text import MultiLineText, SingleLineText
from commerce_services.web.timestamps import UtcTimestamp, as_utc

CategoryId = Annotated[int, Field(ge=1, le=MAX_CATEGORY_ID)]
AttributeName = Annotated[str, Field(pattern=ATTRIBUTE_NAME.pattern)]
AttributeIn = (
    Annotated[SingleLineText, Field(max_length=MAX_ATTRIBUTE_TEXT)]
    | Annotated[StrictInt, Field(ge=INT64[0], le=INT64[1])]
    | StrictBool
)
IfMatch = Annotated[str | None, Header(max_length=64)]
# The model tells a malformed id (422 invalid_product_id) from an unknown one; this bounds it.
ProductId = Annotated[str, Path(max_length=64)]
MAX_PAGE = 100


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # A string, never a JSON number: a float would already have lost the cents.
    amount: StrictStr = Field(min_length=1, max_length=20, examples=["19.99"])
    currency: StrictStr = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: StrictStr = Field(pattern=SKU_PATTERN.pattern)
    price: PriceIn
    attributes: dict[AttributeName, AttributeIn] = Field(
        default_factory=dict, max_length=MAX_VARIANT_ATTRIBUTES
    )


class ProductIn(BaseModel):
    """A whole product: POST creates one, PUT replaces every field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    title: SingleLineText = Field(min_length=1, max_length=MAX_TITLE)
    description: MultiLineText = Field(default="", max_length=MAX_DESCRIPTION)
    brand: SingleLineText | None = Field(default=None, min_length=1, max_length=MAX_BRAND)
    attributes: dict[AttributeName, AttributeIn] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES
    )
    variants: list[VariantIn] = Field(min_length=1, max_length=MAX_VARIANTS)
    images: list[Annotated[StrictStr, Field(max_length=MAX_URL)]] = Field(
        default_factory=list, max_length=MAX_IMAGES
    )
    category_ids: list[CategoryId] = Field(min_length=1, max_length=MAX_CATEGORIES)
    primary_category_id: CategoryId

    def content(self) -> ProductContent:
        return validate_content(
            ProductContent(
                title=self.title,
                description=self.description,
                brand=self.brand,
                attributes=self.attributes,
                variants=tuple(
                    Variant(
                        v.sku,
                        parse_price(v.price.amount, v.price.currency, f"variants[{i}].price"),
                        v.attributes,
                    )
                    for i, v in enumerate(self.variants)
                ),
                images=tuple(self.images),
                category_ids=tuple(self.category_ids),
                primary_category_id=self.primary_category_id,
            )
        )


class PriceView(BaseModel):
    amount: str
    currency: str


class VariantView(BaseModel):
    sku: str
    price: PriceView
    attributes: dict[str, AttributeValue]


class ProductView(BaseModel):
    product_id: str
    version: int
    title: str
    description: str
    brand: str | None
    attributes: dict[str, AttributeValue]
    variants: list[VariantView]
    images: list[str]
    category_ids: list[int]
    primary_category_id: int
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class ProductPageView(BaseModel):
    items: list[ProductView]
    next_cursor: str | None  # pass it back as ?cursor= for the next page; null on the last


def product_json(product: Product) -> dict[str, Any]:
    """`product` as ProductView shows it, ready for orjson. The hot reads answer with this
    rather than with the models (a page is twenty products: validating and serializing them
    through pydantic was a tenth of its CPU); ProductView stays the documented schema, and a
    table test holds the two to the same JSON."""
    return {
        "product_id": product.product_id,
        "version": product.version,
        **content_json(product.content),
        "created_at": as_utc(product.created_at),
        "updated_at": as_utc(product.updated_at),
    }


def content_json(content: ProductContent) -> dict[str, Any]:
    """A product's content as the API writes it: in a ProductView, and as a ProductIn body."""
    return {
        "title": content.title,
        "description": content.description,
        "brand": content.brand,
        "attributes": dict(content.attributes),
        "variants": [
            {
                "sku": v.sku,
                "price": {"amount": v.price.amount, "currency": v.price.currency},
                "attributes": dict(v.attributes),
            }
            for v in content.variants
        ],
        "images": list(content.images),
        "category_ids": list(content.category_ids),
        "primary_category_id": content.primary_category_id,
    }


def json_response(
    body: object, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # UTC as "Z", as pydantic writes a UtcTimestamp.
    return Response(
        orjson.dumps(body, option=orjson.OPT_UTC_Z),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def _api_error(exc: Exception, *, if_match: int | None = None) -> ApiError:
    if isinstance(exc, InvalidProduct):
        return ApiError(422, "invalid_product", str(exc), {"field": exc.field})
    if isinstance(exc, InvalidProductId):
        return ApiError(422, "invalid_product_id", str(exc))
    if isinstance(exc, ProductNotFound):
        return ApiError(404, "not_found", f"no product {exc}")
    if isinstance(exc, CategoryNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, UnknownCategory):
        return ApiError(422, "unknown_category", str(exc), {"category_ids": exc.category_ids})
    if isinstance(exc, DuplicateSku):
        return ApiError(409, "duplicate_sku", str(exc), {"skus": exc.skus})
    if isinstance(exc, VersionConflict):
        status = 412 if if_match is not None else 409
        return ApiError(status, "version_conflict", str(exc), {"current_version": exc.current})
    if isinstance(exc, InvalidIfMatch):
        return ApiError(400, "invalid_if_match", str(exc))
    if isinstance(exc, InvalidCursor):
        return ApiError(422, "invalid_cursor", str(exc))
    raise exc


_EXPECTED = (
    InvalidProduct,
    InvalidProductId,
    ProductNotFound,
    CategoryNotFound,
    UnknownCategory,
    DuplicateSku,
    VersionConflict,
    InvalidIfMatch,
    InvalidCursor,
)


def _if_match(header: str | None) -> int | None:
    try:
        return parse_if_match(header)
    except InvalidIfMatch as exc:
        raise _api_error(exc) from exc


def _sold(content: ProductContent, currencies: Set[str]) -> ProductContent:
    for index, variant in enumerate(content.variants):
        if variant.price.currency not in currencies:
            sold = sorted(currencies)
            raise ApiError(
                422,
                "currency_not_sold",
                f"variants[{index}].price: the shop sells in {', '.join(sold)} only",
                {
                    "field": f"variants[{index}].price.currency",
                    "currency": variant.price.currency,
                    "sold": sold,
                },
            )
    return content


def catalog_router(store: CatalogStore, currencies: Set[str]) -> APIRouter:
    """`currencies`: those the shop sells in; a price in any other is refused."""
    router = APIRouter(prefix="/api/v1", tags=["catalog"])

    def content(body: ProductIn) -> ProductContent:
        try:
            return _sold(body.content(), currencies)
        except InvalidProduct as exc:
            raise _api_error(exc) from exc

    @router.post("/products", status_code=201, response_model=ProductView)
    async def create(body: ProductIn) -> Response:
        checked = content(body)
        try:
            product = await store.create(checked)
        except _EXPECTED as exc:
            raise _api_error(exc) from exc
        headers = {
            "ETag": etag(product.version),
            "Location": f"/api/v1/products/{product.product_id}",
        }
        return json_response(product_json(product), 201, headers)

    @router.get("/products/{product_id}", response_model=ProductView)
    async def get(product_id: ProductId) -> Response:
        try:
            product = await store.get(product_id)
        except _EXPECTED as exc:
            raise _api_error(exc) from exc
        return json_response(product_json(product), headers={"ETag": etag(product.version)})

    @router.put("/products/{product_id}", response_model=ProductView)
    async def replace(product_id: ProductId, body: ProductIn, if_match: IfMatch = None) -> Response:
        expected = _if_match(if_match)
        checked = content(body)
        try:
            product = await store.replace(product_id, checked, expected)
        except _EXPECTED as exc:
            raise _api_error(exc, if_match=expected) from exc
        return json_response(product_json(product), headers={"ETag": etag(product.version)})

    @router.delete("/products/{product_id}", status_code=204)
    async def delete(product_id: ProductId, if_match: IfMatch = None) -> None:
        expected = _if_match(if_match)
        try:
            await store.delete(product_id, expected)
        except _EXPECTED as exc:
            raise _api_error(exc, if_match=expected) from exc

    @router.get("/categories/{category_id}/products", response_model=ProductPageView)
    async def in_category(
        category_id: CategoryId,
        include_descendants: bool = False,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    ) -> Response:
        query = ListingQuery(category_id, include_descendants)
        try:
            after = None if cursor is None else decode_cursor(cursor, query)
            page = await store.list_category(category_id, include_descendants, after, limit)
        except _EXPECTED as exc:
            raise _api_error(exc) from exc
        return json_response(
            {
                "items": [product_json(p) for p in page.products],
                "next_cursor": (
                    None if page.next_after is None else encode_cursor(query, page.next_after)
                ),
            }
        )

    return router
