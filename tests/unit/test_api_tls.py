"""The API's certificate files: a renewal is loaded once both files are new and match; a
half-swapped pair (new certificate, old key) keeps the pair in use until it is complete."""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.api.tls import ServingCertificate
from tests.harness.certs import Authority


def subject(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def write(path: Path, data: bytes, stamp: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(stamp, stamp))  # mtimes apart, however coarse the file system's clock


def served_name(server: ssl.SSLContext, ca: bytes) -> str:
    """A TLS handshake in memory against `server`; the common name it presented."""
    client_context = ssl.create_default_context(cadata=ca.decode())
    client_context.check_hostname = False
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    client = client_context.wrap_bio(pipes[0], pipes[1])
    peer = server.wrap_bio(pipes[2], pipes[3], server_side=True)
    for _ in range(10):  # a handshake is two round trips
        for end in (client, peer):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        pipes[2].write(pipes[1].read())
        pipes[0].write(pipes[3].read())
    der = client.getpeercert(binary_form=True)
    assert der is not None
    name = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(name[0].value)


def test_a_renewal_is_loaded_only_once_certificate_and_key_match(tmp_path: Path) -> None:
    authority = Authority.create("ca")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = authority.issue(subject("first"), ExtendedKeyUsageOID.SERVER_AUTH)
    write(cert, first[0], 1_000_000_000)
    write(key, first[1], 1_000_000_000)
    serving = ServingCertificate(cert, key)
    assert not serving.reload_if_changed()  # nothing changed

    assert served_name(serving.context, authority.cert_pem) == "first"

    renewed = authority.issue(subject("renewed"), ExtendedKeyUsageOID.SERVER_AUTH)
    write(cert, renewed[0], 2_000_000_000)  # the certificate swapped, its key not yet
    assert not serving.reload_if_changed()
    assert served_name(serving.context, authority.cert_pem) == "first"  # still serving
    write(key, renewed[1], 2_000_000_000)
    assert serving.reload_if_changed()
    assert served_name(serving.context, authority.cert_pem) == "renewed"
    assert not serving.reload_if_changed()
