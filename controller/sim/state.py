"""What one running simulator holds: the cloud, Keystone, the injected faults."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from controller.sim import cloud as sim_cloud
from controller.sim import keystone as sim_keystone
from controller.sim import network as sim_network
from controller.sim import topology as topo

MIN_MICROVERSION = (2, 1)
#: Nova 34 goes further; the simulator models up to 2.96, where the last behaviour recovery
#: cares about (evacuated servers landing stopped, 2.95) is included.
MAX_MICROVERSION = (2, 96)
_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def requested_version(
    value: str | None, minimum: tuple[int, int], maximum: tuple[int, int], invalid: str
) -> tuple[int, int]:
    """The microversion a request names: `minimum` when none, `maximum` for "latest";
    ApiError 400 with `invalid` (formatted with the value) when it is not major.minor."""
    if value is None:
        return minimum
    if value.lower() == "latest":
        return maximum
    match = _VERSION.match(value)
    if match is None:
        raise sim_cloud.ApiError(400, invalid.format(value=value))
    return int(match.group(1)), int(match.group(2))


@dataclass(slots=True)
class RouteFault:
    error_rate: float = 0.0
    latency: float = 0.0
    status: int = 503


@dataclass(slots=True)
class Faults:
    """Injected per route class ("servers", "services", "identity", ...); "*" is the default."""

    routes: dict[str, RouteFault] = field(default_factory=dict)

    def for_class(self, route_class: str) -> RouteFault | None:
        return self.routes.get(route_class) or self.routes.get("*")


@dataclass(slots=True)
class Sim:
    spec: topo.Topology
    seed: int | None
    timing: sim_cloud.Timing
    cloud: sim_cloud.Cloud
    keystone: sim_keystone.Keystone
    faults: Faults
    base_url: str = ""
    network: sim_network.Network = field(default_factory=sim_network.Network)
    requests: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)
    #: Glance's images by id (controller.sim.glance): the topology's, and those added since.
    images: dict[str, topo.ImageSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = {image.id: image for image in self.spec.images}

    def load(self, spec: topo.Topology) -> None:
        """Start over from `spec`. Tokens survive, so connected clients keep working."""
        cloud = sim_cloud.Cloud(spec, seed=self.seed, timing=self.timing)  # may refuse spec
        self.spec, self.cloud = spec, cloud
        self.images = {image.id: image for image in spec.images}
        self.keystone.load_users(spec.users)


SIM = web.AppKey("sim", Sim)
