"""Access token verification, the way every service does it: a token the issuer signed with a
key of its JWKS verifies; one expired, signed by another key, by another issuer, for another
audience, naming an unknown key id or no algorithm is refused. The JWKS is fetched once,
again for an unknown key id (a rotated-in key verifies at once), but not more often than the
refresh interval, however many made-up key ids arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from commerce_services.auth.keys import KeysUnavailable, RemoteJwks, StaticKeys, parse_jwks
from commerce_services.auth.principal import CUSTOMER, STAFF
from commerce_services.auth.tokens import InvalidToken, TokenVerifier
from commerce_services.user.signing import (
    AccessTokenIssuer,
    InvalidSigningKeys,
    SigningKeys,
    new_signing_key,
)

ISSUER, AUDIENCE = "https://issuer.test", "commerce-api"


def _now() -> datetime:
    """Read per test: a time taken at collection is long past in a full run."""
    return datetime.now(UTC)


def _keys(*kids: str, active: str | None = None) -> SigningKeys:
    jwks = {"keys": [new_signing_key(kid) for kid in kids]}
    return SigningKeys.from_jwks(json.dumps(jwks), active or kids[0])


KEYS = _keys("k1", "k2")


def _issuer(keys: SigningKeys = KEYS, issuer: str = ISSUER, audience: str = AUDIENCE) -> Any:
    return AccessTokenIssuer(keys, issuer, audience, timedelta(minutes=15))


def _verifier(keys: SigningKeys = KEYS) -> TokenVerifier:
    return TokenVerifier(StaticKeys(keys.public_keys()), issuer=ISSUER, audience=AUDIENCE)


async def test_a_token_of_the_issuer_verifies_with_its_subject_and_known_roles() -> None:
    token = _issuer().issue("u1", frozenset({CUSTOMER, STAFF, "root"}), _now())
    principal = await _verifier().verify(token)
    assert (principal.user_id, principal.roles) == ("u1", frozenset({CUSTOMER, STAFF}))


def _forged(claims: dict[str, Any], kid: str = "k1", key: Any = None) -> str:
    signing = key or KEYS.keys["k1"].key
    return jwt.encode(claims, signing, algorithm="EdDSA", headers={"kid": kid})


BASE = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "roles": [STAFF]}


def _stamps(issued: datetime, lifetime: timedelta) -> dict[str, int]:
    return {"iat": int(issued.timestamp()), "exp": int((issued + lifetime).timestamp())}


REFUSED: list[tuple[str, Callable[[], str], str]] = [
    (
        "expired",
        lambda: _issuer().issue("u1", frozenset({STAFF}), _now() - timedelta(hours=1)),
        "Expired",
    ),
    (
        "signed by a key the issuer does not publish under that kid",
        lambda: _forged(
            {**BASE, **_stamps(_now(), timedelta(minutes=5))},
            key=_keys("other").keys["other"].key,
        ),
        "Signature",
    ),
    (
        "another issuer",
        lambda: _issuer(issuer="https://evil.test").issue("u1", frozenset({STAFF}), _now()),
        "Issuer",
    ),
    (
        "another audience",
        lambda: _issuer(audience="other-api").issue("u1", frozenset({STAFF}), _now()),
        "Audience",
    ),
    (
        "an unknown key id",
        lambda: _issuer(_keys("k9")).issue("u1", frozenset({STAFF}), _now()),
        "unknown key id",
    ),
    (
        "no signature (alg none)",
        lambda: jwt.encode(
            {**BASE, **_stamps(_now(), timedelta(minutes=5))},
            "",
            algorithm="none",
            headers={"kid": "k1"},
        ),
        "alg",
    ),
    (
        "no expiry",
        lambda: _forged({**BASE, "iat": int(_now().timestamp())}),
        "exp",
    ),
    ("not a JWT", lambda: "not.a.token", "malformed"),
    (
        "no key id",
        lambda: _forged({**BASE, **_stamps(_now(), timedelta(minutes=5))}, kid=""),
        "key",
    ),
]


@pytest.mark.parametrize(("case", "token", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_a_bad_token_is_refused(case: str, token: Callable[[], str], reason: str) -> None:
    with pytest.raises(InvalidToken, match=f"(?i){reason}"):
        await _verifier().verify(token())


async def test_after_rotation_both_keys_verify_and_the_new_one_signs() -> None:
    before = _issuer(KEYS).issue("u1", frozenset({CUSTOMER}), _now())
    rotated = SigningKeys(active_kid="k2", keys=KEYS.keys)
    after = _issuer(rotated).issue("u1", frozenset({CUSTOMER}), _now())
    assert jwt.get_unverified_header(after)["kid"] == "k2"
    for token in (before, after):
        assert (await _verifier(rotated).verify(token)).user_id == "u1"


class WallClock:
    def __init__(self) -> None:
        self.now = _now().timestamp()

    def __call__(self) -> float:
        return self.now


async def test_a_remembered_token_is_not_checked_again_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = WallClock()
    verifier = TokenVerifier(
        StaticKeys(KEYS.public_keys()), issuer=ISSUER, audience=AUDIENCE, clock=clock
    )
    token = _issuer().issue("u1", frozenset({CUSTOMER}), _now())  # 15 minutes
    assert (await verifier.verify(token)).user_id == "u1"

    def decode_again(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a remembered token was verified again")

    monkeypatch.setattr(jwt, "decode", decode_again)
    assert (await verifier.verify(token)).user_id == "u1"
    clock.now += 15 * 60 + 30  # its expiry, with the 30 s of leeway
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


class WithdrawableKeys:
    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys

    async def key(self, kid: str) -> Any:
        return self.keys.get(kid)


async def test_a_remembered_token_whose_key_is_withdrawn_is_refused() -> None:
    keys = WithdrawableKeys(KEYS.public_keys())
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    token = _issuer().issue("u1", frozenset({CUSTOMER}), _now())
    assert (await verifier.verify(token)).user_id == "u1"
    del keys.keys["k1"]
    with pytest.raises(InvalidToken, match="unknown key id"):
        await verifier.verify(token)


async def test_remembered_tokens_are_bounded_least_recently_used_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(
        StaticKeys(KEYS.public_keys()), issuer=ISSUER, audience=AUDIENCE, max_remembered=2
    )
    first, second, third = (
        _issuer().issue(user, frozenset({CUSTOMER}), _now()) for user in ("u1", "u2", "u3")
    )
    for token in (first, second, first, third):  # second is the least recently used
        await verifier.verify(token)
    decoded: list[str] = []
    real_decode = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    for token in (first, third, second):
        await verifier.verify(token)
    assert decoded == [second]


def test_signing_keys_must_be_private_asymmetric_and_name_the_active_one() -> None:
    with pytest.raises(InvalidSigningKeys, match="active"):
        _keys("k1", active="k3")
    public = {"keys": [KEYS.public_jwk("k1")]}
    with pytest.raises(InvalidSigningKeys):
        SigningKeys.from_jwks(json.dumps(public), "k1")
    with pytest.raises(InvalidSigningKeys):
        SigningKeys.from_jwks('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}', "h")
    # The published set carries no private part.
    assert all("d" not in key for key in KEYS.jwks()["keys"])
    assert parse_jwks({"keys": [new_signing_key("leaked")]}) == {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _remote(documents: list[dict[str, Any]], clock: Clock) -> tuple[RemoteJwks, list[int]]:
    """A RemoteJwks over an HTTP transport that answers the documents in turn (the last one
    from then on); the list counts the requests."""
    requests: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(1)
        return httpx.Response(200, json=documents[min(len(requests), len(documents)) - 1])

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    jwks = RemoteJwks("http://issuer.test/jwks", http, min_refresh_s=10, max_age_s=300, clock=clock)
    return jwks, requests


async def test_the_jwks_is_refetched_for_an_unknown_kid_but_not_more_often_than_allowed() -> None:
    clock = Clock()
    first = _keys("k1")
    rotated = SigningKeys("k2", {**first.keys, "k2": _keys("k2").keys["k2"]})
    jwks, requests = _remote([first.jwks(), rotated.jwks()], clock)
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
    assert (await verifier.verify(_issuer(first).issue("u1", frozenset(), _now()))).user_id == "u1"
    assert len(requests) == 1
    for forged in range(50):  # made-up key ids within the interval: no request each
        assert await jwks.key(f"forged-{forged}") is None
    assert len(requests) == 1
    clock.now += 11  # the issuer rotated in k2 meanwhile: found on the next unknown kid
    token = _issuer(rotated).issue("u2", frozenset(), _now())
    assert (await verifier.verify(token)).user_id == "u2"
    assert len(requests) == 2
    await verifier.verify(token)  # known now: no request
    assert len(requests) == 2


async def test_an_unreachable_issuer_is_not_the_callers_fault() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    jwks = RemoteJwks("http://issuer.test/jwks", http, min_refresh_s=10, max_age_s=300)
    with pytest.raises(KeysUnavailable):
        await jwks.key("k1")


async def test_concurrent_lookups_share_one_fetch() -> None:
    requests: list[int] = []

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        requests.append(1)
        await asyncio.sleep(0.05)  # every lookup arrives while the first fetch is under way
        return httpx.Response(200, json=KEYS.jwks())

    http = httpx.AsyncClient(transport=httpx.MockTransport(slow_answer))
    jwks = RemoteJwks("http://issuer.test/jwks", http, min_refresh_s=10, max_age_s=300)
    found = await asyncio.gather(*(jwks.key("k1") for _ in range(20)))
    assert all(key is not None for key in found)
    assert len(requests) == 1


async def test_an_issuer_outage_keeps_the_keys_held_verifying() -> None:
    clock = Clock()
    requests: list[int] = []

    def answer_then_fail(request: httpx.Request) -> httpx.Response:
        requests.append(1)
        if len(requests) > 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=KEYS.jwks())

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer_then_fail))
    jwks = RemoteJwks("http://issuer.test/jwks", http, min_refresh_s=10, max_age_s=300, clock=clock)
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)
    token = _issuer().issue("u1", frozenset({CUSTOMER}), _now())
    assert (await verifier.verify(token)).user_id == "u1"
    clock.now += 301  # the set is stale, and the issuer is down when it is refetched
    assert (await verifier.verify(token)).user_id == "u1"
    assert len(requests) == 2
    # A key id it never held is the token's fault, not the issuer's: refused, not 503.
    clock.now += 11
    with pytest.raises(InvalidToken, match="unknown key id"):
        await verifier.verify(_issuer(_keys("k9")).issue("u1", frozenset(), _now()))
    assert len(requests) == 3
