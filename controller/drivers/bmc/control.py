"""PowerControl (recovery.ports) over the drivers of this package: the credentials from the
Secret the Host's BMC names, the driver of the segment's fencing method, the blocking library in
a thread, a deadline on every call, and every failure as one of recovery.power's kinds.

The threads are this module's own pool, not the event loop's default one: a BMC that does not
answer holds its thread until the library gives up, and the default pool (cores + 4 threads)
also runs the Nova and Pacemaker calls of every recovery. The pool has more threads than the
periodic BMC check ever fills (controller.recovery.bmc_check runs a few at once), so a fencing
power off finds a free one.

Calls to one BMC are taken one at a time: pyghmi shares one session between callers with the
same address and credentials (one caller's logout would end the other's), and BMCs answer
concurrent requests poorly. A fencing call waits at most for one check of the same BMC.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from controller.drivers.bmc.credentials import Credentials
from controller.drivers.bmc.ipmi import Ipmi
from controller.drivers.bmc.redfish import Redfish
from controller.drivers.kube import Gone, KubeError
from controller.recovery.power import (
    BMCError,
    BMCUnreachable,
    CredentialsMissing,
    PowerState,
)
from controller.resources.host import BMC
from controller.resources.segment import FencingMethod

log = logging.getLogger("masakari.bmc")

TIMEOUT = 20.0  # seconds per call, Secret read excluded
THREADS = 16
CREDENTIALS_TTL = 300.0  # seconds a Secret read serves power state reads
USERNAME, PASSWORD = "username", "password"

T = TypeVar("T")


class Secrets(Protocol):
    """The one Kubernetes read this needs (controller.drivers.kube.Kube has it)."""

    async def secret(self, namespace: str, name: str) -> dict[str, Any]: ...


class Driver(Protocol):
    def power_state(self, bmc: BMC, credentials: Credentials) -> PowerState: ...

    def power_off(self, bmc: BMC, credentials: Credentials) -> None: ...


def _value(secret: dict[str, Any], key: str, where: str) -> str:
    encoded = (secret.get("data") or {}).get(key)
    if not encoded:
        raise CredentialsMissing(f"{where} has no key {key}")
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsMissing(f"{where}: {key} is not UTF-8 text") from None


@dataclass
class BMCPower:
    secrets: Secrets
    timeout: float = TIMEOUT
    threads: int = THREADS
    _pool: ThreadPoolExecutor = field(init=False)
    _drivers: dict[FencingMethod, Driver] = field(init=False)
    _busy: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    # Reads of the power state (the BMC check, the fencing step's polls) reuse credentials
    # read within CREDENTIALS_TTL: read on every call, 5,000 hosts checked every 10 minutes
    # were 8 Secret reads a second on the API server. A power off reads them afresh, and any
    # failure drops them (a refusal is not always told apart), so a rotated password is used
    # at the next call.
    _credentials_read: dict[tuple[str, str], tuple[float, Credentials]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="bmc")
        # The libraries' own timeouts end a thread soon after the deadline below gave up on it.
        self._drivers = {
            FencingMethod.REDFISH: Redfish(self.timeout),
            FencingMethod.IPMI: Ipmi(self.timeout),
        }

    async def power_state(self, namespace: str, method: FencingMethod, bmc: BMC) -> PowerState:
        driver = self._driver(method, bmc)
        credentials = await self._credentials(namespace, bmc, fresh=False)
        return await self._refused_forgets(
            namespace,
            bmc,
            self._run(method, bmc, "read the power state", driver.power_state, bmc, credentials),
        )

    async def power_off(self, namespace: str, method: FencingMethod, bmc: BMC) -> None:
        driver = self._driver(method, bmc)
        credentials = await self._credentials(namespace, bmc, fresh=True)
        await self._refused_forgets(
            namespace,
            bmc,
            self._run(method, bmc, "power off", driver.power_off, bmc, credentials),
        )

    async def _refused_forgets(self, namespace: str, bmc: BMC, call: Awaitable[T]) -> T:
        try:
            return await call
        except BMCError:
            self._credentials_read.pop((namespace, bmc.credentials_secret), None)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _driver(self, method: FencingMethod, bmc: BMC) -> Driver:
        driver = self._drivers.get(method)
        if driver is None:
            raise BMCError(f"fencing method {method} does not use the BMC {bmc.address}")
        return driver

    async def _credentials(self, namespace: str, bmc: BMC, fresh: bool) -> Credentials:
        key = (namespace, bmc.credentials_secret)
        now = time.monotonic()
        known = self._credentials_read.get(key)
        if not fresh and known is not None and now - known[0] < CREDENTIALS_TTL:
            return known[1]
        credentials = await self._read_credentials(namespace, bmc)
        self._credentials_read[key] = (now, credentials)
        return credentials

    async def _read_credentials(self, namespace: str, bmc: BMC) -> Credentials:
        where = f"Secret {bmc.credentials_secret}"
        try:
            secret = await self.secrets.secret(namespace, bmc.credentials_secret)
        except Gone:
            raise CredentialsMissing(
                f"{where} (of BMC {bmc.address}) does not exist in namespace {namespace}"
            ) from None
        except KubeError as error:
            raise CredentialsMissing(f"{where} could not be read: {error}") from None
        return Credentials(_value(secret, USERNAME, where), _value(secret, PASSWORD, where))

    async def _run(
        self,
        method: FencingMethod,
        bmc: BMC,
        what: str,
        call: Callable[[BMC, Credentials], T],
        *args: Any,
    ) -> T:
        where = f"{method} BMC {bmc.address}"
        lock = self._busy.setdefault((method, bmc.address), asyncio.Lock())
        try:
            async with asyncio.timeout(self.timeout):
                await lock.acquire()
        except TimeoutError:
            raise BMCUnreachable(
                f"{where}: still busy with an earlier call after {self.timeout:g}s"
            ) from None
        try:
            async with asyncio.timeout(self.timeout):
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, call, *args)
        except TimeoutError:
            raise BMCUnreachable(f"{where}: no answer to {what} within {self.timeout:g}s") from None
        except BMCError as error:
            log.debug("%s: %s: %s", where, what, error)
            raise
        finally:
            lock.release()


# By identity: an Objects need not be hashable. Each BMCPower holds its Objects, so an id is
# never reused while its entry lives; there is one Objects per operator (tests make a few).
_shared: dict[int, BMCPower] = {}


def shared_power(secrets: Secrets) -> BMCPower:
    """One BMCPower (one thread pool, one lock per BMC) for every cloud read through
    `secrets`, however often a namespace's binding is resolved again."""
    power = _shared.get(id(secrets))
    if power is None:
        power = _shared[id(secrets)] = BMCPower(secrets)
    return power
