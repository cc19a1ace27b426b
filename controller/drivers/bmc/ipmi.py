"""Chassis power state and hard power off over IPMI 2.0 LAN (RMCP+), with pyghmi.

Blocking calls: the caller (controller.drivers.bmc.control) runs them in a thread and lets one
call at a time reach a given BMC, since pyghmi shares one session between every caller with the
same address and credentials. Every library error becomes one of controller.recovery.power's
kinds; no message carries the credentials.

The two standard chassis commands (Get Chassis Status, Chassis Control "power down") are sent
raw rather than through pyghmi's get_power/set_power, which first probe the BMC's vendor for an
OEM extension: several more round trips per call, and vendor code paths that a fencing step has
no use for.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pyghmi import exceptions as pyghmi_errors
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private import session as ipmi_session

from controller.drivers.bmc.credentials import Credentials
from controller.recovery.power import (
    BMCError,
    BMCUnreachable,
    CredentialsRefused,
    PowerState,
    PowerStateUnreadable,
)
from controller.resources.host import BMC

PORT = 623
CHASSIS = 0x00  # netfn
GET_CHASSIS_STATUS = 0x01
CHASSIS_CONTROL = 0x02
POWER_DOWN = 0x00  # Chassis Control's hard power off
# What pyghmi says when the BMC answered the login and refused it (RAKP2 status codes, the
# password check of RAKP2's HMAC, and RAKP4's integrity check).
_REFUSED = ("Unauthorized", "password", "RAKP", "privilege", "Kg")


def endpoint(address: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address takes the default port."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else PORT
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port)
    return address, PORT


def _endpoint(bmc: BMC) -> tuple[str, int]:
    try:
        return endpoint(bmc.address)
    except ValueError:
        raise BMCError(f"{_describe(bmc)}: not host, host:port or [v6]:port") from None


def _describe(bmc: BMC) -> str:
    return f"ipmi BMC {bmc.address}"


def _failed(response: dict[str, Any], bmc: BMC, what: str) -> BMCError:
    error = str(response.get("error"))
    if response.get("code") == 0xFFFF or error == "timeout":
        return BMCUnreachable(f"{_describe(bmc)} did not answer {what}")
    return BMCError(f"{_describe(bmc)} refused {what}: {error}")


class Ipmi:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def _session(self, bmc: BMC, credentials: Credentials, host: str, port: int) -> Any:
        try:
            return ipmi_command.Command(
                bmc=host,
                userid=credentials.username,
                password=credentials.password,
                port=port,
            )
        except pyghmi_errors.IpmiException as error:
            _unfile(host, port, credentials)  # else the next login is handed this failed one
            text = credentials.scrub(str(error))[:512]
            if any(word in text for word in _REFUSED):
                raise CredentialsRefused(
                    f"{_describe(bmc)} refused the credentials: {text}"
                ) from None
            # pyghmi gives up on an unanswered login with no message at all.
            detail = "" if text in ("", "None") else f": {text}"
            raise BMCUnreachable(f"{_describe(bmc)} did not answer the login{detail}") from None
        except OSError as error:  # name resolution, no route
            raise BMCUnreachable(f"{_describe(bmc)}: {type(error).__name__}: {error}") from None
        except AttributeError:
            # pyghmi 1.6.19 raises this for a login it marked broken without a message (seen on
            # a refused login right after good ones): a failed login all the same.
            _unfile(host, port, credentials)
            raise BMCError(f"{_describe(bmc)}: the login failed, no reason given") from None

    def _raw(self, session: Any, bmc: BMC, what: str, command: int, data: tuple[int, ...]) -> Any:
        try:
            # pyghmi's own timing: a first wait of about half a second, then retransmits. A
            # longer first wait (its `timeout`) made one lost datagram cost the whole of it.
            response = session.raw_command(netfn=CHASSIS, command=command, data=data)
        except pyghmi_errors.IpmiException as error:
            raise BMCUnreachable(
                f"{_describe(bmc)} lost the session during {what}: {error}"
            ) from None
        if "error" in response:
            raise _failed(response, bmc, what)
        return response

    def power_state(self, bmc: BMC, credentials: Credentials) -> PowerState:
        host, port = _endpoint(bmc)
        session = self._session(bmc, credentials, host, port)
        try:
            response = self._raw(session, bmc, "Get Chassis Status", GET_CHASSIS_STATUS, ())
        finally:
            _logout(session, host, port, credentials)
        data = response.get("data") or []
        if not data:
            raise PowerStateUnreadable(f"{_describe(bmc)} answered Get Chassis Status empty")
        return PowerState.ON if data[0] & 0x01 else PowerState.OFF

    def power_off(self, bmc: BMC, credentials: Credentials) -> None:
        host, port = _endpoint(bmc)
        session = self._session(bmc, credentials, host, port)
        try:
            self._raw(session, bmc, "Chassis Control power down", CHASSIS_CONTROL, (POWER_DOWN,))
        finally:
            _logout(session, host, port, credentials)


def _logout(command: Any, host: str, port: int, credentials: Credentials) -> None:
    """A session kept open would take one of the BMC's few slots until it expires, and pyghmi
    would keep it alive from its own thread."""
    # The answer is already in hand; a failed logout expires on the BMC.
    with contextlib.suppress(Exception):
        command.ipmi_session.logout()
    _unfile(host, port, credentials)


def _unfile(host: str, port: int, credentials: Credentials) -> None:
    """pyghmi 1.6.19 files a new session under (bmc, userid, password, port, kg) with the
    strings it was given, and forgets it under the bytes it turned them into: a session logged
    out or refused stays filed, and the next Command for the same BMC and credentials is handed
    that dead session. It is unfiled here, under the key it was filed with."""
    key = (host, credentials.username, credentials.password, port, None)
    ipmi_session.Session.initting_sessions.pop(key, None)
