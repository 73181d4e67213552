"""The pieces of Kafka's security that need no broker: password files, client options, the
stack's certificates and the node's configuration."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hub.kafka import client_options, faststream_options
from hub.kafka_credentials import CredentialsMissing, ensure_password, password, scram_upsert
from hub.settings import Settings
from hub.stack.kafka import KafkaNode, NodeSecurity
from hub.stack.tls import NODE_COMMON_NAME, ensure_node_tls


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_password_is_made_once_in_a_private_file(tmp_path: Path) -> None:
    """The first call makes a random password in a 0600 file of a 0700 directory; later
    calls read the same one."""
    settings = Settings(home=tmp_path)
    secret, made = ensure_password(settings, "ops")
    again, made_again = ensure_password(settings, "ops")
    path = settings.kafka_password_file("ops")
    assert (made, made_again) == (True, False)
    assert secret == again == password(settings, "ops")
    assert len(secret) >= 40
    assert path == tmp_path / "secrets" / "kafka" / "ops.password"
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)


def test_a_missing_password_names_the_file_and_nothing_else(tmp_path: Path) -> None:
    """The error says where the password was looked for; an empty file counts as missing."""
    settings = Settings(home=tmp_path, kafka_password_files={"card": tmp_path / "card.pw"})
    (tmp_path / "card.pw").write_text("\n")
    with pytest.raises(CredentialsMissing, match=r"principal 'card' in .*card\.pw"):
        password(settings, "card")


def test_client_options_log_in_with_the_principals_file(tmp_path: Path) -> None:
    """SASL_SSL with SCRAM-SHA-512 as the principal, its password, and a TLS context that
    verifies the broker against the configured CA."""
    tls = ensure_node_tls(tmp_path / "tls")
    settings = Settings(home=tmp_path, kafka_ca_file=tls.ca_cert, kafka_port=1234)
    secret, _ = ensure_password(settings, "card")
    options = client_options(settings, "card")
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "bootstrap_servers": "127.0.0.1:1234", "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "card",
        "sasl_plain_password": secret}
    assert options["ssl_context"].check_hostname
    security = faststream_options(options)["security"]
    assert (security.username, security.password, security.use_ssl) == ("card", secret, True)


def test_client_options_without_a_secret_or_over_plaintext(tmp_path: Path) -> None:
    """`describe_only` reads no file at all; `plaintext` carries no identity."""
    described = client_options(Settings(home=tmp_path), "ops", describe_only=True)
    assert "sasl_plain_password" not in described
    assert list(tmp_path.iterdir()) == []
    plain = client_options(Settings(home=tmp_path, kafka_security_protocol="plaintext"), "ops")
    assert plain == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert faststream_options(plain)["security"] is None


def test_a_scram_credential_is_the_rfc_5802_salted_password() -> None:
    """SaltedPassword = PBKDF2-HMAC-SHA-512(password, salt, iterations), a fresh salt each."""
    one, two = scram_upsert("ops", "secret"), scram_upsert("ops", "secret")
    assert one.salt != two.salt
    assert one.salted_password == hashlib.pbkdf2_hmac("sha512", b"secret", one.salt,
                                                      one.iterations)
    assert one.iterations >= 4096


def test_the_stack_ca_signs_a_node_certificate_for_localhost(tmp_path: Path) -> None:
    """Keys 0600 in a 0700 directory; the node certificate names localhost and 127.0.0.1,
    serves and dials TLS, chains to the CA, and is kept on a second call."""
    tls = ensure_node_tls(tmp_path / "tls")
    first = tls.node_pem.read_bytes()
    assert ensure_node_tls(tmp_path / "tls").node_pem.read_bytes() == first
    assert (_mode(tls.ca_key), _mode(tls.node_pem), _mode(tls.directory)) == (0o600, 0o600, 0o700)
    node, ca = x509.load_pem_x509_certificates(first)
    assert node.subject.rfc4514_string() == f"CN={NODE_COMMON_NAME}"
    assert node.issuer == ca.subject == x509.load_pem_x509_certificate(
        tls.ca_cert.read_bytes()).subject
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    node.verify_directly_issued_by(ca)
    assert b"PRIVATE KEY" in first
    assert b"PRIVATE KEY" not in tls.ca_cert.read_bytes()


def test_the_secured_node_offers_clients_sasl_ssl_only(tmp_path: Path) -> None:
    """server.properties: the client listener is SASL_SSL, the controller listener asks for
    the node's certificate, no ACL means no access, and no password is written."""
    node = KafkaNode(tmp_path, tmp_path / "kafka", 1, 2, client_options=dict,
                     security=NodeSecurity(tmp_path / "tls", "admin", lambda: "s3cret"))
    props = dict(line.split("=", 1) for line in node._server_properties().splitlines())
    assert props["listener.security.protocol.map"] == "CLIENTS:SASL_SSL,CONTROLLER:SSL"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["listeners"] == "CLIENTS://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:admin;User:CN={NODE_COMMON_NAME}"
    assert "s3cret" not in node._server_properties()
    plain = KafkaNode(tmp_path, tmp_path / "kafka", 1, 2, client_options=dict)
    assert "authorizer.class.name" not in plain._server_properties()
