"""One machine, one Host record: addresses are canonical where they enter, so
another spelling of another group's host is recognised (or refused), and a
Maintainer cannot re-point his host onto one another group uses."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from projects.models import Host
from projects.validators import canonical_address, clean_host_address, parse_host_line

from . import helpers
from .test_admin_permissions import _project_form

# (spelling, the address it stands for): the reviewer's proofs, and a few more.
IPV4_ALIASES = [
    ("168364297", "10.9.9.9"), ("10.9.2313", "10.9.9.9"), ("0x0a.0.0.1", "10.0.0.1"), ("012.0.0.1", "10.0.0.1"),
    ("::ffff:10.0.0.1", "10.0.0.1"), ("[::FFFF:a00:1]", "10.0.0.1"), ("10.0.0.1.", "10.0.0.1"),
]


def change_url(project) -> str:
    return reverse("admin:projects_project_change", args=[project.pk])


@pytest.fixture
def foreign(world):
    """The payments group's hosts: two IPv4, one IPv6 and one named host."""
    hosts = [helpers.make_host(a) for a in ("10.0.0.1", "10.9.9.9", "fd00::1", "db1.example.com")]
    world.other_project.hosts.set(hosts)
    return hosts


@pytest.mark.parametrize(
    "spelling,canonical",
    [("168364297", "10.9.9.9"), ("10.9.2313", "10.9.9.9"), ("0x0a.0.0.1", "10.0.0.1"), ("012.0.0.1", "10.0.0.1"),
     ("::ffff:10.0.0.1", "10.0.0.1"), ("FD00:0000::0001", "fd00::1"), ("[fd00::1]", "fd00::1"),
     ("0:0:0:0:0:0:0:1", "::1"), ("DB1.Example.COM.", "db1.example.com"), ("10.0.0.1", "10.0.0.1")],
)
def test_every_spelling_of_an_address_has_one_canonical_form(spelling, canonical):
    assert canonical_address(spelling) == canonical


@pytest.mark.parametrize("alias,address", IPV4_ALIASES)
def test_other_spellings_of_an_ipv4_address_are_refused_naming_the_address(alias, address):
    with pytest.raises(ValidationError) as exc:
        clean_host_address(alias)
    assert f"enter it as {address}" in " ".join(exc.value.messages)


@pytest.mark.parametrize("alias,address", IPV4_ALIASES)
def test_pasting_a_numeric_alias_of_another_groups_host_is_refused(client, world, foreign, alias, address):
    before = Host.objects.count()
    client.force_login(world.users["maintainer"])
    line = alias if alias.startswith("[") or ":" not in alias else f"[{alias}]:22"
    response = client.post(change_url(world.project), _project_form(world.project, host_lines=line, description="x"))
    assert response.status_code == 200
    assert f"enter it as {address}" in response.content.decode()
    assert Host.objects.count() == before
    world.project.refresh_from_db()
    assert world.project.description != "x"
    assert not world.project.hosts.filter(pk__in=[h.pk for h in foreign]).exists()


@pytest.mark.parametrize("line", ["FD00:0:0:0:0:0:0:0001", "[fd00::0001]:22", "[FD00::1]", "DB1.Example.com", "db1.example.com.:22"])
def test_pasting_another_spelling_of_another_groups_host_finds_it_and_is_refused(client, world, foreign, line):
    before = Host.objects.count()
    client.force_login(world.users["maintainer"])
    response = client.post(change_url(world.project), _project_form(world.project, host_lines=line))
    assert response.status_code == 200
    assert "is used by projects you do not configure" in response.content.decode()
    assert Host.objects.count() == before
    assert not world.project.hosts.filter(pk__in=[h.pk for h in foreign]).exists()


def test_bracketed_ipv6_with_a_port_is_accepted_and_stored_canonical(client, world):
    client.force_login(world.users["maintainer"])
    response = client.post(change_url(world.project), _project_form(world.project, host_lines="[::1]:2222\n[FD00::0002]"))
    assert response.status_code == 302
    assert world.project.hosts.filter(address="::1", port=2222).exists()
    assert world.project.hosts.filter(address="fd00::2", port=22).exists()


@pytest.mark.parametrize("line,port", [("[::1]:2222", 2222), ("::1", 22), ("Web1.Example.com:2200", 2200)])
def test_host_lines_parse_to_canonical_addresses(line, port):
    parsed = parse_host_line(line)
    assert parsed.port == port and parsed.address == canonical_address(parsed.address)


@pytest.mark.parametrize("line", ["[::1]:", "[::1]x", "[10.0.0.1]:22", "[::1]:70000", "10.0.0.1:２２", "fe80::1%eth0"])
def test_broken_host_lines_are_refused(line):
    with pytest.raises(ValidationError):
        parse_host_line(line)


def test_a_host_added_in_the_admin_under_another_spelling_is_refused(client, world, foreign):
    client.force_login(world.users["maintainer"])
    before = Host.objects.count()
    for address in ("0x0a.0.0.1", "FD00::0001", "DB1.example.com"):
        response = client.post(reverse("admin:projects_host_add"), {"address": address, "port": 22, "label": "", "enabled": "on"})
        assert response.status_code == 200, address
    assert Host.objects.count() == before


def test_a_host_added_in_the_admin_is_stored_canonical(client, world):
    client.force_login(world.users["maintainer"])
    response = client.post(reverse("admin:projects_host_add"), {"address": "FD00::00AB", "port": 22, "label": "", "enabled": "on"})
    assert response.status_code == 302
    assert Host.objects.filter(address="fd00::ab").exists()


# Item 3: re-pointing a host.


def _pinned(host: Host, user) -> Host:
    Host.objects.filter(pk=host.pk).update(
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld", host_key_fingerprint="SHA256:old",
        host_key_pinned_by=user, host_key_pinned_at=timezone.now(),
    )
    host.refresh_from_db()
    return host


def _edit_host(client, host: Host, address: str, port: int = 22, label: str = ""):
    url = reverse("admin:projects_host_change", args=[host.pk])
    return client.post(url, {"address": address, "port": port, "label": label, "enabled": "on"})


@pytest.mark.parametrize("target", ["10.0.0.1", "168364297", "0x0a.0.0.1", "::ffff:10.0.0.1", "FD00::1", "DB1.EXAMPLE.COM"])
def test_a_maintainer_cannot_repoint_his_host_onto_another_groups_host(client, world, foreign, target):
    own = _pinned(world.project.hosts.get(), world.users["maintainer"])
    client.force_login(world.users["maintainer"])
    response = _edit_host(client, own, target)
    assert response.status_code == 200
    own.refresh_from_db()
    assert own.address not in {h.address for h in foreign}
    assert own.host_key_fingerprint == "SHA256:old"


def test_changing_a_hosts_address_unpins_its_key(client, world):
    own = _pinned(world.project.hosts.get(), world.users["maintainer"])
    client.force_login(world.users["maintainer"])
    assert _edit_host(client, own, "10.77.0.1").status_code == 302
    own.refresh_from_db()
    assert own.address == "10.77.0.1"
    assert (own.host_key, own.host_key_fingerprint, own.host_key_pinned_by, own.host_key_pinned_at) == ("", "", None, None)


def test_changing_a_hosts_port_unpins_its_key(client, world):
    own = _pinned(world.project.hosts.get(), world.users["maintainer"])
    client.force_login(world.users["maintainer"])
    assert _edit_host(client, own, own.address, port=2222).status_code == 302
    own.refresh_from_db()
    assert own.port == 2222 and own.host_key == ""


def test_changing_only_a_hosts_label_keeps_its_key(client, world):
    own = _pinned(world.project.hosts.get(), world.users["maintainer"])
    client.force_login(world.users["maintainer"])
    assert _edit_host(client, own, own.address, label="web-1").status_code == 302
    own.refresh_from_db()
    assert own.label == "web-1" and own.host_key_fingerprint == "SHA256:old"


# Hosts stored before addresses were canonical.


def _migration():
    return importlib.import_module("projects.migrations.0005_canonical_host_addresses")


def test_stored_addresses_are_made_canonical_unless_that_would_merge_two_records(db, capsys):
    odd = Host.objects.create(address="0x0a.1.0.1", port=22)
    named = Host.objects.create(address="Web9.Example.COM", port=22)
    canonical = Host.objects.create(address="10.1.0.2", port=22)
    twin = Host.objects.create(address="012.1.0.2", port=22)  # the same machine as the one above
    _migration().canonicalise(apps, None)
    for host in (odd, named, canonical, twin):
        host.refresh_from_db()
    assert (odd.address, named.address, canonical.address) == ("10.1.0.1", "web9.example.com", "10.1.0.2")
    assert twin.address == "012.1.0.2"
    assert f"host {twin.pk}" in capsys.readouterr().err


def test_a_legacy_spelling_is_still_found_as_the_same_host(db):
    legacy = Host.objects.create(address="Web9.Example.COM", port=22)
    assert Host.objects.at("web9.example.com", 22).get() == legacy


def test_a_host_cannot_be_repointed_onto_a_legacy_spelling_of_another_groups_host(client, world):
    legacy = Host.objects.create(address="Web9.Example.COM", port=22)  # stored before canonical addresses
    world.other_project.hosts.add(legacy)
    own = world.project.hosts.get()
    client.force_login(world.users["maintainer"])
    assert _edit_host(client, own, "web9.example.com").status_code == 200
    own.refresh_from_db()
    assert own.address != "web9.example.com"
