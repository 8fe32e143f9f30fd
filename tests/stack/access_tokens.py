"""Access tokens for tests that run a service's app in the test process: a signing key made
for the test session, the verifier the apps are given, and the Authorization header of a
caller with given roles (as the user service would sign it)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from commerce_services.auth.keys import StaticKeys
from commerce_services.auth.principal import CUSTOMER, STAFF
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.runtime.clock import utc_now
from commerce_services.user.signing import AccessTokenIssuer, SigningKeys, new_signing_key

KEYS = SigningKeys.from_jwks(json.dumps({"keys": [new_signing_key("test-1")]}), "test-1")
ISSUER = AccessTokenIssuer(KEYS, "https://issuer.test", "commerce-api", timedelta(minutes=15))
VERIFIER = TokenVerifier(
    StaticKeys(KEYS.public_keys()), issuer=ISSUER.issuer, audience=ISSUER.audience
)


def bearer(user_id: str, *roles: str) -> dict[str, str]:
    token = ISSUER.issue(user_id, frozenset(roles), utc_now())
    return {"Authorization": f"Bearer {token}"}


def customer(user_id: str) -> dict[str, str]:
    return bearer(user_id, CUSTOMER)


STAFF_HEADERS = bearer(uuid.uuid4().hex, CUSTOMER, STAFF)

# The <SERVICE>_AUTH_* settings of a service settings object built in a test (its app, if the
# test makes one, is given VERIFIER instead).
AUTH_SETTINGS = {"auth_issuer": ISSUER.issuer, "auth_jwks_url": "http://127.0.0.1:1/jwks.json"}
