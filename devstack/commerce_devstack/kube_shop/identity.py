"""The shop's identity material on this machine, made once and kept in
.stack/kube-shop/identity.json (mode 0600, with the databases it belongs to): the user service's
signing key (a private JWK Set and its active kid), the bootstrap staff account's email and
password, and the gRPC identities (a CA and a certificate per service that serves or calls
gRPC). `make up` puts them into the Secrets samples/secrets/ declares; the password is printed
by `make up`, never written anywhere else. What an older file lacks is added to it."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

from commerce_devstack.secrets import write_private
from commerce_devstack.service_certificates import GRPC_SERVICES, issue
from commerce_services.user.signing import new_signing_key

STAFF_EMAIL = "staff@example.com"


def load_or_create(path: Path, namespace: str = "shop") -> dict[str, dict[str, str]]:
    """Secret name -> its values, for the identity Secrets; `namespace`: where the services
    run (their certificates name their cluster names there)."""
    document: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    missing = not path.exists()
    if "user-signing-keys" not in document:
        kid = datetime.now(UTC).strftime("shop-%Y%m%d-%H%M%S")
        document["user-signing-keys"] = {
            "jwks": json.dumps({"keys": [new_signing_key(kid)]}),
            "activeKeyId": kid,
        }
        missing = True
    if "staff-bootstrap" not in document:
        document["staff-bootstrap"] = {
            "email": STAFF_EMAIL,
            "password": secrets.token_urlsafe(18),
        }
        missing = True
    if any(f"{service}-grpc" not in document for service in GRPC_SERVICES):
        certificates = issue(GRPC_SERVICES, namespace)
        for service in GRPC_SERVICES:
            document[f"{service}-grpc"] = certificates.secret_values(service)
        missing = True
    if missing:
        write_private(path, json.dumps(document, indent=2))
    return document
