"""The hosts' BMCs, recovery.ports.PowerControl: Redfish over sushy, IPMI over pyghmi."""

from controller.drivers.bmc.control import BMCPower, Secrets, shared_power

__all__ = ["BMCPower", "Secrets", "shared_power"]
