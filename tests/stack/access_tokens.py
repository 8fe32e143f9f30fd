"""Access tokens for tests that run a service: a signing key made for the test session, the
verifier in-process apps are given, the Authorization header of a caller with given roles (as
the user service would sign it), and for services run as processes the settings that make them
sign (the user service) or verify (the others, against a JWKS served by `jwks_url`) with it."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from pydantic import SecretStr

from commerce_devstack.service_certificates import ServiceCertificates, issue
from commerce_services.auth.grpc_identity import GrpcIdentitySettings
from commerce_services.auth.keys import StaticKeys
from commerce_services.auth.principal import CUSTOMER, STAFF
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.grpc_wiring import secure_channel
from commerce_services.user.signing import AccessTokenIssuer, SigningKeys, new_signing_key

PRIVATE_JWKS = json.dumps({"keys": [new_signing_key("test-1")]})
KEYS = SigningKeys.from_jwks(PRIVATE_JWKS, "test-1")
# The gRPC identities of services run as processes by tests.
CERTIFICATES = issue(["user", "product", "order", "payment"])
# Headers minted at import (STAFF_HEADERS) are used until the session ends: a full run takes
# about half an hour, so the test issuer's tokens outlive any session.
ISSUER = AccessTokenIssuer(KEYS, "https://issuer.test", "commerce-api", timedelta(hours=12))
VERIFIER = TokenVerifier(
    StaticKeys(KEYS.public_keys()), issuer=ISSUER.issuer, audience=ISSUER.audience
)


def bearer(user_id: str, *roles: str) -> dict[str, str]:
    token = ISSUER.issue(user_id, frozenset(roles), utc_now())
    return {"Authorization": f"Bearer {token}"}


def customer(user_id: str) -> dict[str, str]:
    return bearer(user_id, CUSTOMER)


STAFF_HEADERS = bearer(uuid.uuid4().hex, CUSTOMER, STAFF)

# The <SERVICE>_AUTH_* and _GRPC_TLS_* settings of a service settings object built in a test
# for its other settings (its app, if the test makes one, is given VERIFIER instead; its gRPC
# servers are the test's own).
AUTH_SETTINGS = {
    "auth_issuer": ISSUER.issuer,
    "auth_jwks_url": "http://127.0.0.1:1/jwks.json",
    "grpc_tls_cert": "unused",
    "grpc_tls_key": "unused",
    "grpc_tls_ca": "unused",
}


def signing_env() -> dict[str, str]:
    """The user service process's settings that make it sign with KEYS (and its gRPC
    identity)."""
    return {
        "USER_SIGNING_KEYS": PRIVATE_JWKS,
        "USER_SIGNING_KEY_ID": KEYS.active_kid,
        "USER_AUTH_ISSUER": ISSUER.issuer,
        **CERTIFICATES.env("user"),
    }


def verifying_env(service: str, jwks_url: str) -> dict[str, str]:
    """A service process's settings that make it accept tokens signed with KEYS (and its gRPC
    identity)."""
    prefix = service.upper()
    return {
        f"{prefix}_AUTH_ISSUER": ISSUER.issuer,
        f"{prefix}_AUTH_JWKS_URL": jwks_url,
        **CERTIFICATES.env(service),
    }


def grpc_channel(
    target: str, caller: str | None, issued_by: ServiceCertificates = CERTIFICATES
) -> grpc.aio.Channel:
    """A channel to a service process, as the service `caller` (its certificate, of the CA
    `issued_by`), or with TLS but no client certificate (None)."""
    if caller is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=CERTIFICATES.ca_pem.encode())
        return grpc.aio.secure_channel(target, credentials)
    identity = issued_by.identities[caller]
    return secure_channel(
        target,
        GrpcIdentitySettings(
            grpc_tls_cert=identity.cert_pem,
            grpc_tls_key=SecretStr(identity.key_pem),
            grpc_tls_ca=CERTIFICATES.ca_pem,
        ),
    )


@contextmanager
def jwks_served() -> Iterator[str]:
    """The URL of KEYS' public JWKS, served over HTTP on loopback while the block runs."""
    body = json.dumps(KEYS.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
