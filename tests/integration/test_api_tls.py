"""The Masakari-compatible API over TLS from a certificate in files (a mounted Secret): served
over HTTPS only, a renewed certificate used by new connections without a restart, and an
access log that never holds a token."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Cluster
from tests.harness.certs import Authority
from tests.harness.masakari_api import api_cloud

pytestmark = pytest.mark.integration

LOOPBACK = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


def write_pair(authority: Authority, directory: Path, serial_name: str) -> None:
    """As the kubelet updates a mounted Secret: both files replaced, each atomically."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial_name)])
    cert, key = authority.issue(subject, ExtendedKeyUsageOID.SERVER_AUTH, LOOPBACK)
    for name, data in (("tls.key", key), ("tls.crt", cert)):
        partial = directory / f".{name}.partial"
        partial.write_bytes(data)
        os.replace(partial, directory / name)


def served_name(port: int, ca: Path) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    names = x509.load_der_x509_certificate(der).subject
    return str(names.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_the_api_serves_https_reloads_a_renewed_certificate_and_logs_no_token(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    authority = Authority.create("masakari-test-ca")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(authority.cert_pem)
    secret = tmp_path / "secret"
    secret.mkdir()
    write_pair(authority, secret, "first")
    tls = ("--tls-cert", str(secret / "tls.crt"), "--tls-key", str(secret / "tls.key"))
    with api_cloud(
        cluster.kubeconfig, namespace, tmp_path, *tls, "--tls-reload-seconds", "0.2"
    ) as cloud:
        assert "listening on https://" in cloud.api.log()
        port = int(cloud.api.url.rsplit(":", 1)[1])
        https = f"https://127.0.0.1:{port}/"
        context = ssl.create_default_context(cafile=str(ca))
        token = "gAAAAA-a-token-that-must-never-be-logged"
        request = urllib.request.Request(https, headers={"X-Auth-Token": token})
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            assert answer.status == 200
        # Plain HTTP gets no answer from the API: a token sent that way is never read.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)

        assert served_name(port, ca) == "first"
        write_pair(authority, secret, "renewed")
        deadline = time.monotonic() + 10
        while served_name(port, ca) != "renewed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_name(port, ca) == "renewed"

        log = cloud.api.log()
        assert '"GET / HTTP/1.1" 200' in log, log
        assert token not in log
