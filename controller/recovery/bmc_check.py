"""The BMC check (issue 10, item 3): each host of a segment that fences by redfish or ipmi has
its BMC asked for the power state every `bmcCheckIntervalSeconds`, so that a BMC that does not
answer, refuses its credentials or reports no power state is found on a quiet day, not during
the failure that needs it.

The host pass schedules (`schedule`, with what it read of Hosts and segments) and reads the
results (`readiness`) into each Host's `FencingReady` condition; it never waits for a check.
Checks run apart, `CONCURRENCY` at a time at most, the most overdue first; a due check starts
at the next pass or when another check ends, so at most a pass interval late. A host's first
check falls at a point of its first `FIRST_SPREAD` seconds (a tenth of the interval when that
is shorter) fixed by its name, so an operator that starts on 5,000 Hosts does not ask 5,000
BMCs at once; later checks follow `interval` after the last. At 5,000 hosts every 600 s that is
8.3 checks a second: 4 at once keep up while a check takes under half a second (a Redfish read
on loopback takes 0.05 s, an IPMI one 0.01 s); when many BMCs are silent, each holding its slot
for the driver's timeout, the checks fall behind and run late, never more at once.

Results are kept in memory by (namespace, host): a restarted operator checks again, and the
condition written before the restart stays until then. A host that goes, or whose segment stops
fencing by BMC, is forgotten; a host whose BMC changes (address, system, Secret, method) is
checked again at once.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from controller.recovery.ports import PowerControl
from controller.recovery.power import BMCError, BMCUnreachable
from controller.recovery.progress import utcnow
from controller.resources.common import Condition, set_condition
from controller.resources.host import BMC
from controller.resources.segment import FencingMethod

log = logging.getLogger("masakari.bmc_check")

FENCING_READY = "FencingReady"
BMC_METHODS = (FencingMethod.REDFISH, FencingMethod.IPMI)
CONCURRENCY = 4
FIRST_SPREAD = 60.0  # seconds over which the first checks of new hosts are spread
CHECK_TIMEOUT = 60.0  # a check that outlives its driver's own deadline counts as no answer


@dataclass(frozen=True)
class Target:
    """What a host's BMC is checked with: its segment's method and interval, its spec.bmc."""

    method: FencingMethod
    bmc: BMC | None
    interval: float  # seconds; 0: the check is off

    @property
    def checked(self) -> bool:
        return self.bmc is not None and self.interval > 0


@dataclass(frozen=True)
class Readiness:
    """The outcome of a host's last BMC check."""

    ready: bool
    reason: str  # BMCReady, or a recovery.power reason (CredentialsRefused, ...)
    message: str
    checked: datetime


class Observer(Protocol):
    """Where results go besides the Host's status (the metric)."""

    def checked(self, namespace: str, host: str, method: str, readiness: Readiness) -> None: ...

    def forgotten(self, namespace: str, host: str) -> None: ...


class Unobserved:
    def checked(self, namespace: str, host: str, method: str, readiness: Readiness) -> None:
        pass

    def forgotten(self, namespace: str, host: str) -> None:
        pass


def fencing_ready(
    conditions: list[Condition],
    target: Target | None,
    readiness: Readiness | None,
    now: datetime,
    generation: int,
) -> None:
    """Set or remove a Host's FencingReady condition, in place.

    `target` None: the host's segment does not fence by BMC, or its check is off, so the
    condition goes (a stale True would claim a readiness nobody checks). No spec.bmc: False at
    once, no check needed. Not checked yet: whatever was written before stays.
    """
    if target is None or target.interval <= 0:
        conditions[:] = [c for c in conditions if c.type != FENCING_READY]
        return
    if target.bmc is None:
        message = f"the segment fences by {target.method} and spec.bmc is not set"
        set_condition(
            conditions, FENCING_READY, False, "CredentialsMissing", message, now, generation
        )
        return
    if readiness is None:
        return
    set_condition(
        conditions,
        FENCING_READY,
        readiness.ready,
        readiness.reason,
        readiness.message,
        now,
        generation,
    )


def _spread(namespace: str, host: str) -> float:
    """A fraction in [0, 1) fixed by the host's name, the same in every operator process."""
    return zlib.crc32(f"{namespace}/{host}".encode()) / 2**32


@dataclass(eq=False)
class _Entry:
    target: Target
    power: PowerControl
    due: float
    result: Readiness | None = None
    running: bool = False


@dataclass
class BMCCheck:
    observer: Observer = field(default_factory=Unobserved)
    concurrency: int = CONCURRENCY
    timeout: float = CHECK_TIMEOUT
    first_spread: float = FIRST_SPREAD
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _due: list[tuple[float, int, tuple[str, str]]] = field(default_factory=list)
    _seq: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def readiness(self, namespace: str, host: str) -> Readiness | None:
        entry = self._entries.get((namespace, host))
        return entry.result if entry is not None else None

    @property
    def running(self) -> int:
        return len(self._tasks)

    def schedule(
        self,
        namespace: str,
        targets: dict[str, Target],
        power: PowerControl | None,
        everyone: bool = True,
    ) -> None:
        """Take what a pass read of the namespace: `targets` by host name, for the hosts of
        segments that fence by BMC. `everyone`: these are all such hosts of the namespace, and
        any other is forgotten (a single host's sync passes False). Starts what is due."""
        if everyone:
            for key in [k for k in self._entries if k[0] == namespace and k[1] not in targets]:
                self._forget(key)
        for host, target in targets.items():
            key = (namespace, host)
            entry = self._entries.get(key)
            if power is None or not target.checked:
                if entry is not None:
                    self._forget(key)
                continue
            if entry is not None and entry.target == target:
                entry.power = power
                continue
            now = self.clock()
            if entry is not None and (entry.target.method, entry.target.bmc) == (
                target.method,
                target.bmc,
            ):
                # Only the interval changed: the last result still holds.
                last = entry.due - entry.target.interval if entry.result else now
                entry.target, entry.power = target, power
                self._push(key, entry, max(now, last + target.interval) if entry.result else now)
                continue
            if entry is not None:
                self._forget(key)
                due = now  # a changed BMC is checked at once: someone is fixing it
            else:
                spread = min(target.interval / 10, self.first_spread)
                due = now + _spread(namespace, host) * spread
            entry = self._entries[key] = _Entry(target, power, due)
            self._push(key, entry, due)
        self._start_due()

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _forget(self, key: tuple[str, str]) -> None:
        del self._entries[key]
        self.observer.forgotten(*key)

    def _push(self, key: tuple[str, str], entry: _Entry, due: float) -> None:
        entry.due = due
        self._seq += 1
        heapq.heappush(self._due, (due, self._seq, key))

    def _start_due(self) -> None:
        now = self.clock()
        while self._due and len(self._tasks) < self.concurrency and self._due[0][0] <= now:
            due, _, key = heapq.heappop(self._due)
            entry = self._entries.get(key)
            if entry is None or entry.running or entry.due != due:
                continue  # forgotten, or pushed again since
            entry.running = True
            task = asyncio.get_running_loop().create_task(self._check(key, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _check(self, key: tuple[str, str], entry: _Entry) -> None:
        namespace, host = key
        target = entry.target
        assert target.bmc is not None  # only checked targets are scheduled
        try:
            async with asyncio.timeout(self.timeout):
                state = await entry.power.power_state(namespace, target.method, target.bmc)
            result = Readiness(
                True,
                "BMCReady",
                f"{target.method} BMC {target.bmc.address} answered: power {state}",
                self.now(),
            )
        except BMCError as error:
            result = Readiness(False, error.reason, str(error), self.now())
        except TimeoutError:
            message = f"{target.method} BMC {target.bmc.address}: no answer in {self.timeout:g}s"
            result = Readiness(False, BMCUnreachable.reason, message, self.now())
        except Exception as error:  # a driver's bug must not end the checks
            log.exception("BMC check of host %s failed", host, extra={"namespace": namespace})
            result = Readiness(False, BMCError.reason, type(error).__name__, self.now())
        finally:
            entry.running = False
        if self._entries.get(key) is entry:  # not forgotten or replaced meanwhile
            entry.result = result
            self._push(key, entry, self.clock() + target.interval)
            self.observer.checked(namespace, host, target.method, result)
        current = asyncio.current_task()
        if current is not None:
            self._tasks.discard(current)  # its slot is free for the next due check
        self._start_due()
