"""Pure catalog rules: what a valid product is, money as integer minor units, listing cursors,
If-Match versions, and when a SKU claim is stale. No I/O here."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from commerce_services.product.inventory.model import MAX_LINES, SKU_PATTERN, InvalidRequest

PRODUCT_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_BRAND = 120
MAX_VARIANTS = 100
MAX_IMAGES = 20
MAX_URL = 2048
MAX_CATEGORIES = 20
MAX_ATTRIBUTES = 50
MAX_VARIANT_ATTRIBUTES = 20
MAX_ATTRIBUTE_TEXT = 500
MAX_CATEGORY_ID = 2**63 - 1
MAX_PRICE_QUERY = MAX_LINES  # SKUs in one GetPrices call: as many as an order may have
# Letters first, then letters, digits, '_' or '-': never '.' or '$', which MongoDB keys refuse.
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
INT64 = (-(2**63), 2**63 - 1)  # BSON integers; anything larger cannot be stored
# At most nine integer digits: fits the order service's NUMERIC(12, 2) line prices.
MAX_PRICE_DIGITS = 9
_AMOUNT = re.compile(rf"^(0|[1-9][0-9]{{0,{MAX_PRICE_DIGITS - 1}}})(?:\.([0-9]+))?$")

# A claim whose write has not landed may be taken over after this long (see claim_is_stale).
CLAIM_LEASE = timedelta(minutes=1)

AttributeValue = str | int | bool

# ISO 4217 currencies in circulation, by their number of minor-unit digits. Fund codes, metals
# and test codes are left out on purpose: nothing is priced in them.
_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR "
    "LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD "
    "PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN "
    "SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED VES WST XCD XCG YER ZAR "
    "ZMW ZWG"
)
CURRENCY_EXPONENTS: Mapping[str, int] = {
    **dict.fromkeys(_ZERO_DECIMAL.split(), 0),
    **dict.fromkeys(_TWO_DECIMAL.split(), 2),
    **dict.fromkeys(_THREE_DECIMAL.split(), 3),
}


class InvalidProduct(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidProductId(ValueError):
    pass


class ProductNotFound(LookupError):
    pass


class UnknownCategory(LookupError):
    def __init__(self, category_ids: Sequence[int]) -> None:
        super().__init__(f"no category {', '.join(map(str, category_ids))}")
        self.category_ids = list(category_ids)


class DuplicateSku(Exception):
    def __init__(self, skus: Sequence[str]) -> None:
        super().__init__(f"sku already used by another product: {', '.join(skus)}")
        self.skus = list(skus)


class VersionConflict(Exception):
    """The product is not at the version the writer expected (`current`), or, without If-Match,
    concurrent writers kept this one from landing (`current` is None)."""

    def __init__(self, current: int | None) -> None:
        super().__init__(
            f"the product is at version {current}"
            if current is not None
            else "the product kept changing; read it and try again"
        )
        self.current = current


class InvalidCursor(ValueError):
    pass


class InvalidIfMatch(ValueError):
    pass


@dataclass(frozen=True)
class Price:
    minor: int  # integer minor units: cents for EUR, yen for JPY, fils for KWD
    currency: str

    @property
    def amount(self) -> str:
        """The decimal string with exactly the currency's minor digits: "19.90", "1500"."""
        exponent = CURRENCY_EXPONENTS[self.currency]
        if exponent == 0:
            return str(self.minor)
        whole, fraction = divmod(self.minor, 10**exponent)
        return f"{whole}.{fraction:0{exponent}d}"


@dataclass(frozen=True)
class Variant:
    sku: str
    price: Price
    attributes: Mapping[str, AttributeValue]


@dataclass(frozen=True)
class ProductContent:
    """What a client writes: everything but id, version and timestamps."""

    title: str
    description: str
    brand: str | None
    attributes: Mapping[str, AttributeValue]
    variants: tuple[Variant, ...]
    images: tuple[str, ...]
    category_ids: tuple[int, ...]
    primary_category_id: int

    @property
    def skus(self) -> frozenset[str]:
        return frozenset(v.sku for v in self.variants)


@dataclass(frozen=True)
class Product:
    product_id: str
    version: int  # 1 on create, +1 on every write including the delete
    content: ProductContent
    created_at: datetime
    updated_at: datetime


def check_sku(sku: str) -> str:
    """The inventory's SKU rule, matched in full: the pattern's "$" alone would accept a
    trailing newline."""
    if not isinstance(sku, str) or not SKU_PATTERN.fullmatch(sku):
        raise InvalidRequest(f"invalid sku {sku!r}: 1-64 letters, digits, '.', '_' or '-'")
    return sku


def check_product_id(product_id: str) -> str:
    if not PRODUCT_ID.fullmatch(product_id):
        raise InvalidProductId("a product id is 32 lowercase hex characters")
    return product_id


def parse_price(amount: str, currency: str, field: str = "price") -> Price:
    """A positive decimal string with at most the currency's minor digits, e.g. "19.9" EUR."""
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise InvalidProduct(f"{field}.currency", f"{currency!r} is not an ISO 4217 currency")
    match = _AMOUNT.fullmatch(amount)  # not match(): "$" would let a trailing newline in
    if match is None:
        raise InvalidProduct(
            f"{field}.amount", 'a price is a decimal string such as "19.99", below 1000000000'
        )
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise InvalidProduct(
            f"{field}.amount", f"{currency} prices have at most {exponent} fraction digits"
        )
    minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return check_price(Price(minor, currency), field)


def check_price(price: Price, field: str = "price") -> Price:
    """What parse_price guarantees, for a Price built any other way."""
    exponent = CURRENCY_EXPONENTS.get(price.currency)
    if exponent is None:
        raise InvalidProduct(f"{field}.currency", f"{price.currency!r} is not an ISO 4217 currency")
    if price.minor <= 0:
        raise InvalidProduct(f"{field}.amount", "a price must be greater than zero")
    if price.minor >= 10 ** (MAX_PRICE_DIGITS + exponent):
        raise InvalidProduct(f"{field}.amount", "a price is below 1000000000")
    return price


def _check_utf8(field: str, text: str) -> None:
    # JSON may carry lone surrogates ("\ud800"); BSON, being UTF-8, cannot store them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidProduct(field, "text must be valid Unicode") from exc


def _check_attributes(field: str, attributes: Mapping[str, AttributeValue], limit: int) -> None:
    if len(attributes) > limit:
        raise InvalidProduct(field, f"at most {limit} attributes")
    for name, value in attributes.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidProduct(
                field, f"attribute name {name!r}: a letter, then up to 63 letters, digits, _ or -"
            )
        if isinstance(value, str):
            if len(value) > MAX_ATTRIBUTE_TEXT:
                raise InvalidProduct(f"{field}.{name}", f"at most {MAX_ATTRIBUTE_TEXT} characters")
            _check_utf8(f"{field}.{name}", value)
        elif isinstance(value, int):  # bool is an int too, and fine
            if not INT64[0] <= value <= INT64[1]:
                raise InvalidProduct(f"{field}.{name}", "integers must fit in 64 bits")
        else:
            raise InvalidProduct(f"{field}.{name}", "a value is a string, an integer or a boolean")


def _check_image(field: str, url: str) -> None:
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidProduct(field, f"an http(s) URL of at most {MAX_URL} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidProduct(field, "a URL has no spaces or control characters")


def _check_text(field: str, text: str | None, limit: int, *, required: bool) -> None:
    if text is None:
        if required:
            raise InvalidProduct(field, "required")
        return
    if required and not text.strip():
        raise InvalidProduct(field, "must not be blank")
    if len(text) > limit:
        raise InvalidProduct(field, f"at most {limit} characters")
    _check_utf8(field, text)


def validate_content(content: ProductContent) -> ProductContent:
    """Raises InvalidProduct naming the first field that breaks a rule. The HTTP models check
    types and sizes first; this is the authority, so the store cannot be handed a bad product."""
    _check_text("title", content.title, MAX_TITLE, required=True)
    _check_text("description", content.description, MAX_DESCRIPTION, required=False)
    _check_text("brand", content.brand, MAX_BRAND, required=False)
    _check_attributes("attributes", content.attributes, MAX_ATTRIBUTES)
    if not 1 <= len(content.variants) <= MAX_VARIANTS:
        raise InvalidProduct("variants", f"a product has 1 to {MAX_VARIANTS} variants")
    seen: set[str] = set()
    for index, variant in enumerate(content.variants):
        field = f"variants[{index}]"
        try:
            check_sku(variant.sku)
        except InvalidRequest as exc:
            raise InvalidProduct(f"{field}.sku", str(exc)) from exc
        if variant.sku in seen:
            raise InvalidProduct(f"{field}.sku", f"sku {variant.sku} appears twice")
        seen.add(variant.sku)
        check_price(variant.price, f"{field}.price")
        _check_attributes(f"{field}.attributes", variant.attributes, MAX_VARIANT_ATTRIBUTES)
    if len(content.images) > MAX_IMAGES:
        raise InvalidProduct("images", f"at most {MAX_IMAGES} images")
    for index, url in enumerate(content.images):
        _check_image(f"images[{index}]", url)
    if not 1 <= len(content.category_ids) <= MAX_CATEGORIES:
        raise InvalidProduct("category_ids", f"1 to {MAX_CATEGORIES} categories")
    if len(set(content.category_ids)) != len(content.category_ids):
        raise InvalidProduct("category_ids", "a category appears twice")
    if any(not 1 <= c <= MAX_CATEGORY_ID for c in content.category_ids):
        raise InvalidProduct("category_ids", "category ids are positive 64-bit integers")
    if content.primary_category_id not in content.category_ids:
        raise InvalidProduct("primary_category_id", "must be one of category_ids")
    return content


def price_query(skus: Iterable[str]) -> list[str]:
    """The distinct SKUs of a price lookup, in request order; InvalidRequest if one is malformed
    or there are too many."""
    distinct = list(dict.fromkeys(skus))
    if len(distinct) > MAX_PRICE_QUERY:
        raise InvalidRequest(f"at most {MAX_PRICE_QUERY} SKUs per call")
    for sku in distinct:
        check_sku(sku)
    return distinct


# ---- listing cursors ------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingQuery:
    category_id: int
    include_descendants: bool


def encode_cursor(query: ListingQuery, after: str) -> str:
    """Opaque to clients: the last product id of a page, bound to the listing it came from."""
    raw = json.dumps(
        {"c": query.category_id, "d": query.include_descendants, "a": after},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: ListingQuery) -> str:
    """The product id to continue after; InvalidCursor if the cursor is damaged or belongs to
    another listing (another category, or with/without descendants)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # ValueError covers bad UTF-8 and JSON
        raise InvalidCursor("the cursor is not one this API issued") from exc
    if not isinstance(fields, dict) or set(fields) != {"c", "d", "a"}:
        raise InvalidCursor("the cursor is not one this API issued")
    after, category_id = fields["a"], fields["c"]
    if not isinstance(after, str) or not PRODUCT_ID.fullmatch(after):
        raise InvalidCursor("the cursor is not one this API issued")
    if type(category_id) is not int or not isinstance(fields["d"], bool):  # true is not 1 here
        raise InvalidCursor("the cursor is not one this API issued")
    if category_id != query.category_id or fields["d"] is not query.include_descendants:
        raise InvalidCursor("the cursor belongs to another listing")
    return after


# ---- optimistic concurrency -----------------------------------------------------------------


def parse_if_match(header: str | None) -> int | None:
    """The version an If-Match header demands: `3` or the ETag form `"3"`. None when absent or
    `*` (any current product, which every write needs anyway)."""
    if header is None or header.strip() == "*":
        return None
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise InvalidIfMatch('If-Match takes one product version: 3 or "3"')
    return int(value)


def etag(version: int) -> str:
    return f'"{version}"'


# ---- SKU claims -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuClaim:
    """`product_id` claimed `sku` for the write that makes it `version`."""

    sku: str
    product_id: str
    version: int
    claimed_at: datetime


@dataclass(frozen=True)
class Owner:
    """The claiming product's document as stored now."""

    version: int
    deleted: bool
    skus: frozenset[str]


def claim_is_stale(
    claim: SkuClaim, owner: Owner | None, now: datetime, lease: timedelta = CLAIM_LEASE
) -> bool:
    """Whether another product may take the SKU over.

    A claim protects a SKU that its product's stored document uses, or that a write of that
    product is about to store. A document at or past the claim's version without the SKU means
    that write landed without it, failed, or was undone since: stale. A document behind the
    claim (or none yet) means the write is in flight or crashed: the claim holds for `lease`.
    """
    if owner is not None:
        if owner.deleted:
            return True
        if claim.sku in owner.skus:
            return False
        if owner.version >= claim.version:
            return True
    return now - claim.claimed_at > lease
