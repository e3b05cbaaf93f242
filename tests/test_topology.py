"""Topology: member identities and URLs are fixed by settings alone, before any machine exists."""

from __future__ import annotations

import pytest

from model.cluster_spec import main_cluster
from model.settings import load_settings
from model.topology import build_topology, initial_cluster

REQUIRED = {"dnsZone": "example.com", "cloudflareZoneId": "0123456789abcdef0123456789abcdef"}


def topology(count: int = 3, stack: str = "prod", **overrides: object):  # type: ignore[no-untyped-def]
    return build_topology(main_cluster(load_settings({**REQUIRED, "memberCount": count, **overrides}, stack)))


def test_members_are_named_etcd_n_under_the_cluster_subdomain() -> None:
    members = topology().members
    assert [m.name for m in members] == ["etcd-1", "etcd-2", "etcd-3"]
    assert [m.fqdn for m in members] == [f"etcd-{i}.prod.example.com" for i in (1, 2, 3)]


def test_urls_use_fqdns_and_tls_on_the_standard_ports() -> None:
    member = topology().members[0]
    assert member.client_url == "https://etcd-1.prod.example.com:2379"
    assert member.peer_url == "https://etcd-1.prod.example.com:2380"
    assert member.metrics_url == "http://etcd-1.prod.example.com:2381"


def test_initial_cluster_lists_every_member_by_peer_url() -> None:
    assert initial_cluster(topology().members) == (
        "etcd-1=https://etcd-1.prod.example.com:2380,"
        "etcd-2=https://etcd-2.prod.example.com:2380,"
        "etcd-3=https://etcd-3.prod.example.com:2380")


def test_etcd_servers_is_the_comma_list_kube_apiserver_takes() -> None:
    assert topology().etcd_servers == ",".join(
        f"https://etcd-{i}.prod.example.com:2379" for i in (1, 2, 3))


@pytest.mark.parametrize(("count", "tolerated"), [(1, 0), (3, 1), (5, 2), (7, 3)])
def test_fault_tolerance_is_a_minority_of_members(count: int, tolerated: int) -> None:
    assert topology(count).fault_tolerance == tolerated


def test_a_custom_subdomain_places_members_under_it() -> None:
    assert topology(dnsSubdomain="etcd.eu1").members[0].fqdn == "etcd-1.etcd.eu1.example.com"
