"""The API's TLS: a certificate and key from files (a Secret mounted in the pod), read again
when they change.

Callers send Keystone tokens, admin tokens among them: the API must not serve them over plain
HTTP beyond a laptop. The Secret is typically renewed by cert-manager well before it expires;
the kubelet swaps the mounted files, and every new connection after the next check gets the
new certificate, without a restart and without dropping connections that are open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("masakari.api")


@dataclass
class ServingCertificate:
    cert: Path
    key: Path
    context: ssl.SSLContext = field(init=False)
    _seen: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.load()

    def _stamp(self) -> tuple[float, ...]:
        # The kubelet replaces a Secret's files through a symlink swap: stat follows it.
        return tuple(os.stat(path).st_mtime_ns for path in (self.cert, self.key))

    def load(self) -> None:
        stamp = self._stamp()
        # Tried on a scratch context first: OpenSSL drops the key of the context in use when a
        # certificate that does not match it is loaded, and every handshake would then fail.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        self.context.load_cert_chain(self.cert, self.key)
        self._seen = stamp

    def reload_if_changed(self) -> bool:
        """True when a changed pair was loaded. A half-written or mismatched pair (the cert
        swapped, the key not yet) keeps the one in use, and is tried again next time."""
        try:
            if self._stamp() == self._seen:
                return False
            self.load()
        except (OSError, ssl.SSLError) as error:
            log.warning("TLS certificate not reloaded: %s", type(error).__name__)
            return False
        log.info("TLS certificate reloaded from %s", self.cert)
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
