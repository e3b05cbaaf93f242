"""kube-apiserver's own etcd flag parsing (tests/kubeflags.py: k8s.io/apiserver v0.37.2, built
from tests/kube_apiserver_flags), checked on the kinds of values this program exports:

- an override `/events#URL;URL` stores events on those servers and every other resource on
  --etcd-servers, as kube-apiserver's storage factory resolves them;
- a malformed override, or no --etcd-servers, is rejected with kube-apiserver's own message;
- --etcd-servers and --etcd-servers-overrides are comma-separated lists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubeflags import (  # noqa: F401  (kube_apiserver_flags is a fixture, used by name)
    NAME,
    KubeApiserverRejected,
    binary_path,
    cache_root,
    kube_apiserver_flags,
    resolve,
)

pytestmark = [pytest.mark.real, pytest.mark.usefixtures("kube_apiserver_flags")]

REPO = Path(__file__).resolve().parents[1]
MEMBERS = ["https://etcd-1.main.example.com:2379", "https://etcd-2.main.example.com:2379",
           "https://etcd-3.main.example.com:2379"]
EVENTS = ["https://etcd-events-1.main.example.com:2379", "https://etcd-events-2.main.example.com:2379"]
TLS = ["--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
       "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
       "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key"]
# kube-apiserver's message for any override it cannot parse (options.ParseEtcdServersOverrides).
OVERRIDES_INVALID = ("--etcd-servers-overrides invalid, must be of format: group/resource#servers, "
                     "where servers are URLs, semicolon separated")
OTHER_RESOURCES = ["/pods", "/secrets", "apps/deployments", "coordination.k8s.io/leases"]


def test_an_events_override_stores_events_on_its_two_servers_and_every_other_resource_on_etcd_servers(
        ) -> None:
    resolved = resolve([f"--etcd-servers={','.join(MEMBERS)}",
                        f"--etcd-servers-overrides=/events#{';'.join(EVENTS)}", *TLS],
                       resources=["/events", *OTHER_RESOURCES])
    assert resolved.servers == MEMBERS
    assert resolved.overrides == {"/events": EVENTS}
    assert resolved.resources == {"/events": EVENTS, **dict.fromkeys(OTHER_RESOURCES, MEMBERS)}


def test_an_override_applies_to_the_group_it_names_only() -> None:
    # "/events" is the core group's events; "events.k8s.io/events" is another group's resource
    # name. (kube-apiserver itself also stores events.k8s.io/events with /events, a cohabitation
    # listed in k8s.io/kubernetes, which the tool does not reproduce: see its main.go.)
    resolved = resolve([f"--etcd-servers={MEMBERS[0]}", f"--etcd-servers-overrides=/events#{EVENTS[0]}"],
                       resources=["/events", "apps/events"])
    assert resolved.resources == {"/events": [EVENTS[0]], "apps/events": [MEMBERS[0]]}


@pytest.mark.parametrize("override", [
    pytest.param(f"/events{EVENTS[0]}", id="no-#"),
    pytest.param(f"events#{EVENTS[0]}", id="no-/"),
    pytest.param(f"/events#{EVENTS[0]}#{EVENTS[1]}", id="two-#"),
    pytest.param(f"core/v1/events#{EVENTS[0]}", id="two-/"),
    pytest.param(f"/events#{EVENTS[0]};", id="empty-server"),
    pytest.param("/events#", id="no-servers"),
])
def test_a_malformed_override_is_rejected_with_kube_apiservers_message(override: str) -> None:
    with pytest.raises(KubeApiserverRejected) as rejected:
        resolve([f"--etcd-servers={MEMBERS[0]}", f"--etcd-servers-overrides={override}"])
    assert rejected.value.message == OVERRIDES_INVALID


def test_without_etcd_servers_kube_apiserver_refuses_to_start() -> None:
    with pytest.raises(KubeApiserverRejected) as rejected:
        resolve([f"--etcd-servers-overrides=/events#{EVENTS[0]}", *TLS])
    assert rejected.value.message == "--etcd-servers must be specified"


def test_a_misspelt_etcd_flag_is_rejected_as_unknown() -> None:
    with pytest.raises(KubeApiserverRejected) as rejected:
        resolve([f"--etcd-server={MEMBERS[0]}"])
    assert rejected.value.message == "unknown flag: --etcd-server"


def test_comma_separated_etcd_servers_are_parsed_as_a_list() -> None:
    assert resolve([f"--etcd-servers={','.join(MEMBERS)}"]).servers == MEMBERS


def test_a_repeated_etcd_servers_flag_appends_to_the_list() -> None:
    assert resolve([f"--etcd-servers={MEMBERS[0]}", f"--etcd-servers={MEMBERS[1]},{MEMBERS[2]}"]
                   ).servers == MEMBERS


def test_overrides_for_two_resources_are_comma_separated_with_semicolons_between_servers() -> None:
    resolved = resolve([f"--etcd-servers={MEMBERS[0]}",
                        f"--etcd-servers-overrides=/events#{';'.join(EVENTS)},coordination.k8s.io/leases#"
                        f"{MEMBERS[1]}"])
    assert resolved.overrides == {"/events": EVENTS, "coordination.k8s.io/leases": [MEMBERS[1]]}


def test_a_comma_between_override_servers_splits_the_override_and_is_rejected() -> None:
    with pytest.raises(KubeApiserverRejected) as rejected:
        resolve([f"--etcd-servers={MEMBERS[0]}", f"--etcd-servers-overrides=/events#{','.join(EVENTS)}"])
    assert rejected.value.message == OVERRIDES_INVALID


def test_the_binary_is_cached_outside_the_repository_keyed_by_its_sources() -> None:
    binary = binary_path()
    assert binary.is_file()
    assert binary.parent.parent == cache_root()
    assert binary.parent.name.startswith(f"{NAME}-") and len(binary.parent.name) == len(NAME) + 1 + 64
    assert not binary.resolve().is_relative_to(REPO)
