"""Power state and hard power off of a ComputerSystem over Redfish, with sushy.

Blocking calls: the caller (controller.drivers.bmc.control) runs them in a thread. Every library
error becomes one of controller.recovery.power's kinds; no message carries the credentials.

HTTP basic authentication on every request, not a Redfish session: a session takes one of the
few slots a BMC has (some have four to eight), and a check every few minutes per host would keep
them taken until they expire, locking out the people who need the BMC's console.
"""

from __future__ import annotations

from typing import Any

import sushy
from sushy import exceptions as sushy_errors
from sushy.auth import BasicAuth

from controller.drivers.bmc.credentials import Credentials
from controller.recovery.power import (
    BMCError,
    BMCUnreachable,
    CredentialsRefused,
    PowerState,
    PowerStateUnreadable,
)
from controller.resources.host import BMC

ROOT = "/redfish/v1/"
# The Redfish states in which the host may still run its instances count as On: only Off is
# a host that stopped writing.
_STATES = {
    sushy.PowerState.ON: PowerState.ON,
    sushy.PowerState.POWERING_ON: PowerState.ON,
    sushy.PowerState.POWERING_OFF: PowerState.ON,
    sushy.PowerState.PAUSED: PowerState.ON,
    sushy.PowerState.OFF: PowerState.OFF,
}


def base_url(address: str) -> str:
    return address if "://" in address else f"https://{address}"


def _system_path(system: str) -> str:
    return system if system.startswith("/") else f"{ROOT}Systems/{system}"


def _describe(bmc: BMC) -> str:
    return f"redfish BMC {bmc.address}" + (f" system {bmc.system}" if bmc.system else "")


def _translated(error: Exception, bmc: BMC, credentials: Credentials) -> BMCError:
    where = _describe(bmc)
    text = credentials.scrub(str(error))[:512]
    if isinstance(error, sushy_errors.AccessError):
        return CredentialsRefused(f"{where} refused the credentials (HTTP {error.status_code})")
    if isinstance(error, sushy_errors.ConnectionError):
        return BMCUnreachable(f"{where} did not answer: {text}")
    if isinstance(error, sushy_errors.ResourceNotFoundError):
        return BMCError(f"{where}: not found on the BMC (is spec.bmc.system right?)")
    # Any other sushy error, requests or urllib3 past sushy's wrapping, a malformed address:
    # the text is scrubbed, since a library's message may echo what it was given.
    return BMCError(f"{where}: {type(error).__name__}: {text}")


class Redfish:
    """One BMC per call: nothing is kept between calls (no session, no connection pool), so a
    changed Secret or address takes effect at the next call."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def _system(self, bmc: BMC, credentials: Credentials) -> tuple[Any, Any]:
        root = sushy.Sushy(
            base_url(bmc.address),
            auth=BasicAuth(credentials.username, credentials.password),
            verify=bmc.verify_tls,
            root_prefix=ROOT,
            read_timeout=self.timeout,
            connect_timeout=self.timeout,
            # sushy's default retries a 5xx ten times three seconds apart: half a minute that
            # belongs to the fencing step's own bounded attempts.
            server_side_retries=1,
            server_side_retries_delay=0,
        )
        system = root.get_system(_system_path(bmc.system) if bmc.system else None)
        return root, system

    def power_state(self, bmc: BMC, credentials: Credentials) -> PowerState:
        root = None
        try:
            root, system = self._system(bmc, credentials)
            raw = system.power_state
        except Exception as error:
            raise _translated(error, bmc, credentials) from None
        finally:
            _close(root)
        state = _STATES.get(raw) if isinstance(raw, sushy.PowerState) else None
        if state is None:
            raise PowerStateUnreadable(f"{_describe(bmc)} reports PowerState {raw!s}")
        return state

    def power_off(self, bmc: BMC, credentials: Credentials) -> None:
        root = None
        try:
            root, system = self._system(bmc, credentials)
            system.reset_system(sushy.ResetType.FORCE_OFF)
        except Exception as error:
            raise _translated(error, bmc, credentials) from None
        finally:
            _close(root)


def _close(root: Any) -> None:
    if root is not None:
        root._conn.close()
