"""Two clusters in one program: the main cluster and an events cluster beside it.

Under mocks: URNs never collide, the events cluster has its own members, names, addresses, peer
CA and firewall, its servers chain to the main client CA and accept the main cluster's client
certificates, and the stack's outputs for kube-apiserver carry `--etcd-servers-overrides`.
Stacks created before resources were named after their cluster keep every URN (aliases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubeflags import (
    kube_apiserver_flags,  # noqa: F401  (a fixture, found by name)
    resolve,
)
from program import (
    COMMAND,
    DNS_RECORD,
    DROPLET,
    FIREWALL,
    LOCALLY_SIGNED_CERT,
    SELF_SIGNED_CERT,
    VPC,
    ProgramRun,
)
from test_program_local import LOCAL_STACK

from model.cluster_spec import events_cluster, main_cluster
from model.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
URNS = ROOT / "tests" / "data" / "urns"
EVENTS = {"eventsCluster": True}
REQUIRED = {"dnsZone": "example.com", "cloudflareZoneId": "0123456789abcdef0123456789abcdef"}


@pytest.fixture(scope="module")
def both(program: Any) -> ProgramRun:
    result: ProgramRun = program(EVENTS)
    return result


@pytest.fixture(scope="module")
def local_both(program: Any) -> ProgramRun:
    result: ProgramRun = program({**LOCAL_STACK, "cloudflareZoneId": None, **EVENTS,
                                  "eventsMemberCount": 1}, "local")
    return result


# --- URNs: unique, and the old ones kept -----------------------------------------------------

@pytest.mark.parametrize("config", [EVENTS, {**LOCAL_STACK, "cloudflareZoneId": None, **EVENTS}],
                         ids=["digitalocean", "qemu"])
def test_two_clusters_in_one_program_never_share_a_urn(program: Any, config: dict[str, Any]) -> None:
    run: ProgramRun = program(config, "local" if "backend" in config else "dev")
    urns = [reg.urn for reg in run.registrations]
    assert len(urns) == len(set(urns))
    assert {reg.name for reg in run.of_type("etcd-cluster:index:EtcdCluster")} == {
        "main" if "backend" not in config else "local",
        "main-events" if "backend" not in config else "local-events"}


CASES = {
    "digitalocean": ({"memberCount": 7, "dnsSrvRecords": True}, "dev"),
    "qemu": ({**LOCAL_STACK, "memberCount": 7, "cloudflareZoneId": None}, "local"),
    "qemu-with-dns": ({**LOCAL_STACK, "memberCount": 7}, "local"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_urn_of_a_stack_made_before_the_rename_is_kept_by_its_resource_or_an_alias(
        program: Any, case: str) -> None:
    # tests/data/urns/<case>.txt: what the program registered before its resources were named
    # after their cluster. Each old URN must still be answered to, or `pulumi up` would
    # replace every member of a running cluster.
    config, stack = CASES[case]
    run: ProgramRun = program(config, stack)
    answered = {reg.urn for reg in run.registrations}
    for reg in run.registrations:
        answered.update(reg.alias_urns)
    old = set((URNS / f"{case}.txt").read_text().split())
    assert old - answered == set()


def test_no_alias_of_the_events_cluster_can_claim_a_main_resource(both: ProgramRun) -> None:
    # Only the main cluster answers to the old names; the events cluster's aliases are the
    # provider SDKs' own (cloudflare's DnsRecord was `cloudflare:index/record:Record`).
    events = both.cluster("main-events")
    old = set((URNS / "digitalocean.txt").read_text().split())
    main = {reg.urn for reg in both.cluster("main").registrations}
    for reg in events.registrations:
        assert not set(reg.alias_urns) & (old | main), reg.name
        assert all(urn.endswith(f"::{reg.name}") for urn in reg.alias_urns), reg.name


# --- the events cluster's own members, names and machines ------------------------------------

def test_the_events_cluster_has_its_own_members_named_etcd_events_n(both: ProgramRun) -> None:
    droplets = both.cluster("main-events").named(DROPLET)
    assert sorted(droplets) == ["etcd-events-1", "etcd-events-2", "etcd-events-3"]
    assert {reg.inputs["name"] for reg in droplets.values()} == {
        f"etcd-events-{n}.main.example.com" for n in (1, 2, 3)}
    assert sorted(both.cluster("main").named(DROPLET)) == ["etcd-1", "etcd-2", "etcd-3"]


def test_the_events_cluster_takes_its_own_sizes_and_defaults_to_the_main_ones(program: Any) -> None:
    run: ProgramRun = program({**EVENTS, "eventsMemberCount": 5, "eventsDropletSize": "c-4",
                               "eventsDataVolumeSizeGib": 50, "dropletSize": "s-4vcpu-8gb"})
    events = run.cluster("main-events")
    assert len(events.of_type(DROPLET)) == 5
    assert {reg.inputs["size"] for reg in events.of_type(DROPLET)} == {"c-4"}
    assert {reg.inputs["size"] for reg in events.of_type("digitalocean:index/volume:Volume")} == {50}
    assert {reg.inputs["size"] for reg in run.cluster("main").of_type(DROPLET)} == {"s-4vcpu-8gb"}


def test_the_events_tuning_reaches_its_members_only(program: Any) -> None:
    run: ProgramRun = program({**EVENTS, "eventsQuotaBackendBytes": 4 * 1024**3,
                               "eventsSnapshotCount": 5000})
    events = run.cluster("main-events").user_data["etcd-events-1"]
    main = run.cluster("main").user_data["etcd-1"]
    assert f"--quota-backend-bytes={4 * 1024**3}" in events
    assert "--snapshot-count=5000" in events
    assert f"--quota-backend-bytes={4 * 1024**3}" not in main


def test_the_events_cluster_has_its_own_token_and_initial_cluster(both: ProgramRun) -> None:
    events = both.cluster("main-events").user_data["etcd-events-1"]
    assert "--initial-cluster-token=etcd-cluster.dev.main-events" in events
    assert "etcd-1=https://etcd-1.main.example.com:2380" not in events
    assert "etcd-events-3=https://etcd-events-3.main.example.com:2380" in events


def test_the_events_cluster_joins_the_main_clusters_vpc(both: ProgramRun) -> None:
    (vpc,) = both.of_type(VPC)
    assert vpc in both.cluster("main").registrations
    assert {reg.inputs["vpcUuid"] for reg in both.of_type(DROPLET)} == {vpc.id}


def test_the_events_firewall_admits_its_own_peers_and_the_same_clients(both: ProgramRun) -> None:
    firewalls = {name: both.cluster(name).named(FIREWALL)["firewall"].inputs
                 for name in ("main", "main-events")}
    rules = {name: {rule["portRange"]: set(rule.get("sourceTags") or [])
                    for rule in inputs["inboundRules"]}
             for name, inputs in firewalls.items()}
    assert rules["main-events"]["2380"] == {"etcd:dev:main-events"}
    assert rules["main"]["2380"] == {"etcd:dev:main"}
    assert rules["main-events"]["2379"] == {"etcd:dev:main-events", "k8s-control-plane"}


def test_the_events_cluster_has_dns_records_of_its_own(both: ProgramRun) -> None:
    names = {reg.inputs["name"] for reg in both.cluster("main-events").of_type(DNS_RECORD)}
    assert names == {f"etcd-events-{n}.main.example.com" for n in (1, 2, 3)}


def test_local_events_members_get_addresses_apart_from_the_main_ones(local_both: ProgramRun) -> None:
    events = local_both.cluster("local-events").named(COMMAND)
    main = local_both.cluster("local").named(COMMAND)
    assert sorted(events) == ["etcd-events-1"]
    network = yaml.safe_load(events["etcd-events-1"].inputs["environment"]["ETCD_VM_NETWORK_CONFIG"])
    (interface,) = [value for value in network["ethernets"].values() if "addresses" in value]
    assert interface["addresses"] == ["192.168.56.21/24"]
    names = {reg.inputs["environment"]["ETCD_VM_NAME"] for reg in [*events.values(), *main.values()]}
    assert len(names) == 4


# --- one trust for kube-apiserver --------------------------------------------------------------

def certs_of(run: ProgramRun) -> dict[str, x509.Certificate]:
    return run.certificates


def test_the_events_servers_chain_to_the_main_client_ca(both: ProgramRun) -> None:
    main_ca = certs_of(both.cluster("main"))["client-ca-cert"]
    events = both.cluster("main-events")
    assert "client-ca-cert" not in events.named(SELF_SIGNED_CERT)
    for n in (1, 2, 3):
        server = certs_of(events)[f"etcd-events-{n}-server-cert"]
        assert server.issuer == main_ca.subject
        server.verify_directly_issued_by(main_ca)


def test_the_events_peers_have_a_peer_ca_of_their_own(both: ProgramRun) -> None:
    main_peer_ca = certs_of(both.cluster("main"))["peer-ca-cert"]
    events = certs_of(both.cluster("main-events"))
    assert events["peer-ca-cert"].subject != main_peer_ca.subject
    events["etcd-events-1-peer-cert"].verify_directly_issued_by(events["peer-ca-cert"])


def test_the_events_members_trust_the_main_client_certificates(both: ProgramRun) -> None:
    # No client certificates of its own: kube-apiserver's one --etcd-certfile works for both.
    assert both.cluster("main-events").of_type(LOCALLY_SIGNED_CERT)
    assert not [name for name in both.cluster("main-events").named(LOCALLY_SIGNED_CERT)
                if "client" in name]
    main_ca_pem = both.cluster("main").named(SELF_SIGNED_CERT)["client-ca-cert"].outputs
    assert main_ca_pem is not None
    events_user_data = both.cluster("main-events").user_data["etcd-events-2"]
    assert main_ca_pem["certPem"].strip().splitlines()[1] in events_user_data


# --- outputs ----------------------------------------------------------------------------------

def test_the_overrides_output_sends_events_to_the_events_members(both: ProgramRun) -> None:
    assert both.output("etcd_servers_overrides") == "/events#" + ";".join(
        f"https://etcd-events-{n}.main.example.com:2379" for n in (1, 2, 3))
    assert both.output("etcd_servers") == ",".join(
        f"https://etcd-{n}.main.example.com:2379" for n in (1, 2, 3))


def test_the_kubeadm_snippet_carries_the_overrides_as_an_api_server_extra_arg(both: ProgramRun) -> None:
    snippet = yaml.safe_load(both.output("kubeadm_external_etcd"))
    assert snippet["etcd"]["external"]["endpoints"] == both.output("endpoints")
    assert snippet["apiServer"]["extraArgs"] == [
        {"name": "etcd-servers-overrides", "value": both.output("etcd_servers_overrides")}]


def test_the_events_outputs_are_present_and_secret_where_they_hold_keys(both: ProgramRun) -> None:
    for name in ("etcd_servers", "endpoints", "members", "certificate_expiry", "etcd_version",
                 "cluster_name", "cluster_tag"):
        assert f"events_{name}" in both.outputs, name
        assert not both.outputs[f"events_{name}"].secret, name
    assert both.outputs["events_etcdctl_env"].secret_on_wire
    assert both.outputs["apiserver_client_key_pem"].secret_on_wire
    assert "events_ca_pem" not in both.outputs  # one CA for both: ca_pem
    assert both.output("events_cluster_name") == "main-events"


def test_without_an_events_cluster_there_is_no_override(program: Any) -> None:
    run: ProgramRun = program({})
    assert "etcd_servers_overrides" not in run.outputs
    assert not [name for name in run.outputs if name.startswith("events_")]
    assert "apiServer" not in yaml.safe_load(run.output("kubeadm_external_etcd"))


def test_the_cluster_outputs_name_the_vpc_and_the_tags_consumers_wire_up(both: ProgramRun) -> None:
    (vpc,) = both.of_type(VPC)
    assert both.output("vpc_id") == vpc.id
    assert both.output("cluster_tag") == "etcd:dev:main"
    assert both.output("client_source_tags") == ["k8s-control-plane"]


# --- settings -----------------------------------------------------------------------------------

def test_the_events_cluster_is_off_by_default() -> None:
    assert events_cluster(load_settings(REQUIRED, "dev")) is None


def test_events_settings_without_the_events_cluster_are_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({**REQUIRED, "eventsMemberCount": 3}, "dev")
    assert refused.value.problems == [
        "etcd-cluster:eventsMemberCount = 3: configures the events cluster, which is off; set "
        "`pulumi config set eventsCluster true`, or remove the setting."]


def test_an_even_events_member_count_is_refused_naming_the_events_setting() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({**REQUIRED, **EVENTS, "eventsMemberCount": 4}, "dev")
    (problem,) = refused.value.problems
    assert problem.startswith("etcd-cluster:eventsMemberCount = 4: etcd needs a majority")


def test_a_cluster_name_too_long_for_its_events_cluster_is_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({**REQUIRED, **EVENTS, "clusterName": "c" * 60, "backend": "qemu"}, "d")
    assert any(problem.startswith("etcd-cluster:clusterName = ") and "events cluster" in problem
               for problem in refused.value.problems)


def test_the_events_cluster_inherits_every_unset_size_and_tuning() -> None:
    settings = load_settings({**REQUIRED, **EVENTS, "memberCount": 5, "snapshotCount": 20000}, "dev")
    main, events = main_cluster(settings), events_cluster(settings)
    assert events is not None
    assert (events.member_count, events.tuning, events.droplets.size) == (
        5, main.tuning, main.droplets.size)
    assert events.name == "dev-events"


@pytest.mark.usefixtures("kube_apiserver_flags")
def test_kube_apiserver_parses_the_exported_servers_and_overrides_as_meant(both: ProgramRun) -> None:
    resolved = resolve([f"--etcd-servers={both.output('etcd_servers')}",
                        f"--etcd-servers-overrides={both.output('etcd_servers_overrides')}"],
                       ["/events", "/pods", "events.k8s.io/events"])
    assert resolved.overrides == {"/events": both.output("events_endpoints")}
    assert resolved.resources["/events"] == both.output("events_endpoints")
    assert resolved.resources["/pods"] == both.output("endpoints")
