"""The services' gRPC identities: a CA of their own and a certificate per service (common name
= the service's role, which is what a gRPC method's caller list names), usable to serve and to
call (mutual TLS). `make up` puts them into one Secret per service (keys tls.crt, tls.key,
ca.crt, as the grpcIdentity binding reads them), the local shop and the tests into the
services' environment. Made in memory; nothing here writes a file."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commerce_devstack.pki import issue as issue_certificate
from commerce_devstack.pki import key_pem, new_ca

VALIDITY = dt.timedelta(days=825)
# The services that serve or call gRPC, so have a gRPC identity (payment speaks none).
GRPC_SERVICES = ("user", "product", "order")


@dataclass(frozen=True)
class ServiceIdentity:
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class ServiceCertificates:
    ca_pem: str
    identities: dict[str, ServiceIdentity]  # service -> its certificate and key

    def secret_values(self, service: str) -> dict[str, str]:
        """The grpcIdentity Secret's keys for `service`."""
        identity = self.identities[service]
        return {"tls.crt": identity.cert_pem, "tls.key": identity.key_pem, "ca.crt": self.ca_pem}

    def env(self, service: str, prefix: str | None = None) -> dict[str, str]:
        """The settings a service process reads them from (<PREFIX>_GRPC_TLS_*)."""
        identity = self.identities[service]
        prefix = prefix or service.upper()
        return {
            f"{prefix}_GRPC_TLS_CERT": identity.cert_pem,
            f"{prefix}_GRPC_TLS_KEY": identity.key_pem,
            f"{prefix}_GRPC_TLS_CA": self.ca_pem,
        }


def _dns_names(service: str, namespace: str | None) -> list[x509.GeneralName]:
    names = [service, "localhost"]
    if namespace is not None:
        base = f"{service}.{namespace}"
        names += [base, f"{base}.svc", f"{base}.svc.cluster.local"]
    return [x509.DNSName(name) for name in names]


def issue(services: Iterable[str], namespace: str | None = None) -> ServiceCertificates:
    """A new CA and a certificate for each service, valid for its cluster names in `namespace`
    (when given), localhost and 127.0.0.1."""
    ca_key, ca = new_ca("commerce services CA", VALIDITY, path_length=0)
    identities = {}
    for service in services:
        key, cert = issue_certificate(
            ca_key,
            ca,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            [*_dns_names(service, namespace), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
            VALIDITY,
        )
        identities[service] = ServiceIdentity(
            cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key).decode()
        )
    return ServiceCertificates(ca.public_bytes(serialization.Encoding.PEM).decode(), identities)
