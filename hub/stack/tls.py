"""The local stack's own certificate authority and the Kafka node's certificate, as PEM files.

Kafka reads PEM key stores (`ssl.keystore.type=PEM`, KIP-651), so no keytool and no Java key
store is involved. The CA signs one certificate, the node's: clients check the broker with
it over SASL_SSL, and the node presents it on its mutual-TLS controller listener, where its
subject is its principal. Private keys are written 0600 into a 0700 directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["NODE_COMMON_NAME", "NodeTls", "ensure_node_tls", "node_principal"]

NODE_COMMON_NAME = "permit-hub-kafka-node"
"""The node certificate's subject CN; on the controller listener the node is `User:CN=…`."""

CA_DAYS = 3650
NODE_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
"""A node certificate this close to its end is replaced when the node starts."""


@dataclass(frozen=True)
class NodeTls:
    """Where the CA certificate, its key, and the node's key-and-certificate PEM live."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients trust (HUB_KAFKA_CA_FILE points here by default)."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (0600); it only ever signs the node certificate."""
        return self.directory / "ca.key"

    @property
    def node_pem(self) -> Path:
        """The node's private key (PKCS#8) followed by its certificate and the CA's: the
        PEM key store Kafka reads (`ssl.keystore.location`)."""
        return self.directory / "node.pem"


def node_principal() -> str:
    """The Kafka principal of the node on its mutual-TLS controller listener."""
    return f"User:CN={NODE_COMMON_NAME}"


def ensure_node_tls(
    directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> NodeTls:
    """The CA and a node certificate for `hosts` under `directory`, made when missing,
    and the node certificate renewed when it is near its end or names other hosts."""
    tls = NodeTls(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    if not (tls.ca_cert.exists() and tls.ca_key.exists()):
        _write_ca(tls)
        tls.node_pem.unlink(missing_ok=True)
    if not _node_current(tls, hosts):
        _write_node(tls, hosts)
    return tls


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write_private(path: Path, data: bytes) -> None:
    """Write a file that holds a private key: created 0600, never readable by others."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the only private-key encoding Kafka's PEM key store reads.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_ca(tls: NodeTls) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Permit Hub local stack CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(tls.ca_key, _key_pem(key))
    tls.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _node_current(tls: NodeTls, hosts: tuple[str, ...]) -> bool:
    if not tls.node_pem.exists():
        return False
    cert = x509.load_pem_x509_certificates(tls.node_pem.read_bytes())[0]
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names) == set(_alt_names(hosts))


def _alt_names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write_node(tls: NodeTls, hosts: tuple[str, ...]) -> None:
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{tls.ca_key} does not hold the EC key this module writes")
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(NODE_COMMON_NAME)).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=NODE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
        # Server for clients and for its own broker; client when the broker dials the
        # controller listener, which asks for a certificate.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + tls.ca_cert.read_bytes()
    _write_private(tls.node_pem, _key_pem(key) + chain)
