"""The user service's signing keys and the access tokens it signs.

The keys come from a Secret as a private JWK Set (several keys, each with its `kid`) and the id
of the active one: tokens are signed with the active key, and every key of the set is published
in the JWKS, so a token signed by the previous key still verifies after a switch. Rotation: add
a key, make it active once every verifier has fetched the JWKS with it (its refresh interval),
drop the old one after the access-token lifetime (docs/security.md). Asymmetric keys only
(Ed25519 or ECDSA): the verifying services hold no secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt import PyJWK, PyJWKError
from jwt.algorithms import OKPAlgorithm

SIGNING_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES384"})


class InvalidSigningKeys(ValueError):
    pass


def new_signing_key(kid: str) -> dict[str, str]:
    """A new Ed25519 private JWK with this key id (what `make up` and the tests put in the
    Secret)."""
    jwk = OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate(), as_dict=True)
    return {**{k: str(v) for k, v in jwk.items()}, "kid": kid, "use": "sig", "alg": "EdDSA"}


@dataclass(frozen=True)
class SigningKeys:
    active_kid: str
    keys: Mapping[str, PyJWK]  # kid -> private key

    @classmethod
    def from_jwks(cls, private_jwks: str, active_kid: str) -> SigningKeys:
        try:
            document = json.loads(private_jwks)
            raw_keys = document["keys"]
            keys = {str(raw["kid"]): PyJWK(raw) for raw in raw_keys}
        except (ValueError, KeyError, TypeError, PyJWKError) as exc:
            # The message never quotes the document: it holds private keys.
            raise InvalidSigningKeys(
                f"the signing keys are not a private JWK Set with a kid on every key "
                f"({type(exc).__name__})"
            ) from None
        for kid, key in keys.items():
            if key.algorithm_name not in SIGNING_ALGORITHMS or not hasattr(key.key, "sign"):
                raise InvalidSigningKeys(
                    f"key {kid!r}: an Ed25519 or ECDSA private key is needed, not "
                    f"{key.algorithm_name}"
                )
        if active_kid not in keys:
            raise InvalidSigningKeys(f"the active key id {active_kid!r} is not in the set")
        return cls(active_kid, keys)

    def public_keys(self) -> dict[str, PyJWK]:
        return {kid: PyJWK(self.public_jwk(kid)) for kid in self.keys}

    def public_jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        public = key.Algorithm.to_jwk(key.key.public_key(), as_dict=True)
        return {**public, "kid": kid, "use": "sig", "alg": key.algorithm_name}

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set: what verifiers fetch."""
        return {"keys": [self.public_jwk(kid) for kid in sorted(self.keys)]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self.keys[self.active_kid]
        return jwt.encode(
            dict(claims),
            key.key,
            algorithm=key.algorithm_name,
            headers={"kid": self.active_kid, "typ": "at+jwt"},
        )


@dataclass(frozen=True)
class AccessTokenIssuer:
    keys: SigningKeys
    issuer: str
    audience: str
    lifetime: timedelta

    def issue(self, user_id: str, roles: frozenset[str], now: datetime) -> str:
        """`now`: naive UTC, as the services' clock gives it."""
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
        return self.keys.sign(
            {
                "iss": self.issuer,
                "aud": self.audience,
                "sub": user_id,
                "roles": sorted(roles),
                "iat": int(now.timestamp()),
                "exp": int((now + self.lifetime).timestamp()),
                "jti": uuid.uuid4().hex,
            }
        )
