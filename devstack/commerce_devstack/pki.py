"""Certificates of the local cluster: a CA, the API server's and the kubelet's serving
certificates, a client certificate per component (the admin in group system:masters, the
kubelet as system:node:<name>, ...) and the service-account signing key. Created once per
state folder."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=3650)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key_pem(key))
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_ca(
    common_name: str, validity: dt.timedelta, path_length: int | None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that may sign certificates (and, unless `path_length` is 0, CAs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName] | None = None,
    validity: dt.timedelta = _VALIDITY,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its certificate, signed by the CA, for `usages` (server, client auth)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class Identity:
    """A certificate of the cluster: a client (user name, groups) or a server (names)."""

    stem: str
    common_name: str
    organization: str | None = None
    server_names: tuple[str, ...] = ()

    @property
    def usage(self) -> x509.ObjectIdentifier:
        return (
            ExtendedKeyUsageOID.SERVER_AUTH
            if self.server_names
            else ExtendedKeyUsageOID.CLIENT_AUTH
        )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def cluster_identities(addresses: list[str], node_name: str) -> list[Identity]:
    """The API server's serving certificate (for `addresses` and the names pods use), the
    kubelet's, and one client certificate per component, each under the user name that the
    API server's bootstrap RBAC roles already bind (system:kube-scheduler, ...)."""
    apiserver_names = (
        *addresses,
        "10.0.0.1",  # the `kubernetes` Service: first address of the Service range
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    return [
        Identity("apiserver", "kube-apiserver", server_names=apiserver_names),
        Identity(
            "kubelet-serving", f"system:node:{node_name}", server_names=(*addresses, node_name)
        ),
        Identity("admin", "commerce-admin", "system:masters"),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("kubelet", f"system:node:{node_name}", "system:nodes"),
    ]


def ensure_pki(pki_dir: Path, addresses: list[str], node_name: str = "commerce-node") -> None:
    """Writes ca.crt, <stem>.{crt,key} for every cluster identity and sa.{key,pub}, unless
    present for these addresses (a changed address gets new certificates)."""
    identities = cluster_identities(addresses, node_name)
    marker = pki_dir / "identities"
    wanted = repr(identities)
    if (pki_dir / "sa.pub").exists() and marker.exists() and marker.read_text() == wanted:
        return
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = new_ca("commerce-stack-ca", _VALIDITY, path_length=None)
    _write_key(pki_dir / "ca.key", ca_key)
    (pki_dir / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    for identity in identities:
        sans = [_general_name(n) for n in identity.server_names] or None
        subject = _name(identity.common_name, identity.organization)
        key, cert = issue(ca_key, ca_cert, subject, [identity.usage], sans)
        _write_key(pki_dir / f"{identity.stem}.key", key)
        (pki_dir / f"{identity.stem}.crt").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
        )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki_dir / "sa.key", sa_key)
    (pki_dir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    marker.write_text(wanted)
