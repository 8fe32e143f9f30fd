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
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=825)


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


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _dns_names(service: str, namespace: str | None) -> list[x509.GeneralName]:
    names = [service, "localhost"]
    if namespace is not None:
        base = f"{service}.{namespace}"
        names += [base, f"{base}.svc", f"{base}.svc.cluster.local"]
    return [x509.DNSName(name) for name in names]


def issue(services: Iterable[str], namespace: str | None = None) -> ServiceCertificates:
    """A new CA and a certificate for each service, valid for its cluster names in `namespace`
    (when given), localhost and 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "commerce services CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    identities = {}
    for service in services:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        *_dns_names(service, namespace),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        identities[service] = ServiceIdentity(
            cert.public_bytes(serialization.Encoding.PEM).decode(), _pem(key)
        )
    return ServiceCertificates(ca.public_bytes(serialization.Encoding.PEM).decode(), identities)
