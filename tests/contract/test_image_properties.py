"""Glance reads through the driver: what selection and priority by image are built from, on
every backend.

The same assertions hold on the simulator's Glance and on the Nova lab's real Glance 33: a
server names the image it was booted from; an image's own properties and tags read back as they
were created, without Glance's base attributes; an image Glance does not have is NotFound.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from controller.recovery.nova import NotFound
from tests.contract.backend import NovaBackend
from tests.contract.test_nova_driver import Driver

PROPERTIES = {"service_tier": "database", "hw_qemu_guest_agent": "yes", "role": "amphora"}
TAGS = ["amphora", "ha"]


@pytest.fixture
def driver(nova_backend: NovaBackend) -> Iterator[Driver]:
    ready = Driver(nova_backend)
    yield ready
    ready.close()


def test_a_server_names_the_image_it_was_booted_from(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    host = nova_backend.hosts[0]
    [server_id] = nova_backend.boot_servers(host, 1)
    assert driver(driver.nova.server(server_id)).image_id == nova_backend.boot_image
    [listed] = [s for s in driver(driver.nova.servers_on_host(host)) if s.id == server_id]
    assert listed.image_id == nova_backend.boot_image


def test_an_images_properties_and_tags_read_back_without_glances_own_attributes(
    driver: Driver, nova_backend: NovaBackend
) -> None:
    image_id = nova_backend.create_image(PROPERTIES, TAGS)
    image = driver(driver.nova.image(image_id))
    print(f"\n{nova_backend.name}: image {image_id} properties {sorted(image.properties)}")
    assert image.id == image_id
    assert dict(image.properties) == PROPERTIES
    assert image.tags == frozenset(TAGS)
    # The boot image has no properties of its own: nothing a rule could match by accident.
    assert dict(driver(driver.nova.image(nova_backend.boot_image)).properties) == {}


def test_an_image_glance_does_not_have_is_not_found(driver: Driver) -> None:
    with pytest.raises(NotFound):
        driver(driver.nova.image(str(uuid.uuid4())))
