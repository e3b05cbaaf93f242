"""The program under Pulumi mocks: which resources it registers, with which options and inputs.

Each test names a behaviour an operator relies on. The runs come from the `program` fixture
(tests/program.py), which records every RegisterResource request the engine would receive.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
import pulumi_tls as tls
import pytest
from program import (
    DNS_RECORD,
    DROPLET,
    FIREWALL,
    STACK,
    TAG,
    VOLUME,
    VOLUME_ATTACHMENT,
    VPC,
    ProgramError,
    ProgramRun,
    run_component_program,
    run_program,
)
from tls_mock import TlsMockError

from model.settings import SettingsError

FINGERPRINT = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
CLIENT_PORT, PEER_PORT, METRICS_PORT, SSH_PORT = "2379", "2380", "2381", "22"
# A configuration with every kind of source set, as a production stack would have.
SOURCES: dict[str, Any] = {
    "clientSourceTags": ["k8s-control-plane", "k8s-bastion"],
    "clientSourceCidrs": ["10.20.0.0/16"],
    "monitoringSourceTags": ["prometheus"],
    "monitoringSourceCidrs": ["10.30.0.0/24"],
    "adminCidrs": ["198.51.100.0/24"],
}


@pytest.fixture(scope="module")
def run(program: Any) -> ProgramRun:
    """The default cluster: 3 members, base configuration."""
    result: ProgramRun = program()
    return result


@pytest.fixture(scope="module")
def sourced(program: Any) -> ProgramRun:
    result: ProgramRun = program(SOURCES)
    return result


def cluster_tag(run: ProgramRun) -> str:
    name: str = run.get(TAG, "cluster-tag").inputs["name"]
    return name


def inbound(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """The firewall's inbound rules by port."""
    (firewall,) = run.of_type(FIREWALL)
    rules: list[dict[str, Any]] = firewall.inputs["inboundRules"]
    by_port = {rule["portRange"]: rule for rule in rules}
    assert len(by_port) == len(rules), f"two inbound rules for one port: {rules}"
    return by_port


def sources(rule: dict[str, Any]) -> tuple[set[str], set[str]]:
    return set(rule.get("sourceTags") or []), set(rule.get("sourceAddresses") or [])


# --- members never get replaced by an IaC change ------------------------------------------

def test_every_droplet_ignores_changes_to_user_data_image_and_ssh_keys(run: ProgramRun) -> None:
    droplets = run.of_type(DROPLET)
    assert droplets
    for droplet in droplets:
        # Engine property names (camelCase): a snake_case name here would silently ignore nothing.
        assert {"userData", "image", "sshKeys"} <= set(droplet.ignore_changes), droplet.name


def test_droplets_and_volumes_are_protected_by_default(run: ProgramRun) -> None:
    for resource in [*run.of_type(DROPLET), *run.of_type(VOLUME)]:
        assert resource.protect, f"{resource.type} {resource.name} is not protected"


def test_protect_members_false_leaves_droplets_and_volumes_unprotected(program: Any) -> None:
    run = program({"protectMembers": False})
    for resource in [*run.of_type(DROPLET), *run.of_type(VOLUME)]:
        assert not resource.protect, f"{resource.type} {resource.name} is protected"


def test_user_data_is_a_secret_input_of_every_droplet(run: ProgramRun) -> None:
    for droplet in run.of_type(DROPLET):
        assert "userData" in droplet.secret_inputs, droplet.name


def test_user_data_fits_digitaloceans_limit(run: ProgramRun) -> None:
    for member, user_data in run.user_data.items():
        assert user_data.startswith("#cloud-config\n"), member
        assert len(user_data.encode()) <= 64 * 1024, member


def test_each_member_has_a_data_volume_attached_to_its_own_droplet(run: ProgramRun) -> None:
    droplets = run.named(DROPLET)
    volumes = run.named(VOLUME)
    attachments = run.named(VOLUME_ATTACHMENT)
    assert len(volumes) == len(attachments) == len(droplets) == 3
    for member, droplet in droplets.items():
        volume = volumes[f"{member}-data"]
        attachment = attachments[f"{member}-data-attachment"]
        assert droplet.id is not None and volume.id is not None
        assert attachment.inputs["dropletId"] == int(droplet.id)
        assert attachment.inputs["volumeId"] == volume.id
        assert volume.inputs["region"] == droplet.inputs["region"]
        assert volume.inputs["size"] == 20


def test_data_volume_size_follows_the_setting(program: Any) -> None:
    run = program({"dataVolumeSizeGib": 100, "memberCount": 1})
    assert [volume.inputs["size"] for volume in run.of_type(VOLUME)] == [100]


def test_data_volumes_are_formatted_once_with_the_label_the_user_data_mounts(
        run: ProgramRun) -> None:
    for volume in run.of_type(VOLUME):
        assert volume.inputs["initialFilesystemType"] == "ext4"
        assert volume.inputs["initialFilesystemLabel"] == "etcd-data"
    for member, user_data in run.user_data.items():
        assert "LABEL=etcd-data" in user_data, member


def test_droplets_are_named_by_fqdn_in_the_configured_region_size_and_image(
        program: Any) -> None:
    run = program({"region": "fra1", "dropletSize": "g-2vcpu-8gb", "dropletImage": "ubuntu-24-04-x64",
                   "adminSshKeys": ["12345", FINGERPRINT]})
    names = sorted(droplet.inputs["name"] for droplet in run.of_type(DROPLET))
    assert names == [f"etcd-{n}.main.example.com" for n in (1, 2, 3)]
    for droplet in run.of_type(DROPLET):
        assert droplet.inputs["region"] == "fra1"
        assert droplet.inputs["size"] == "g-2vcpu-8gb"
        assert droplet.inputs["image"] == "ubuntu-24-04-x64"
        assert droplet.inputs["sshKeys"] == ["12345", FINGERPRINT]
    for volume in run.of_type(VOLUME):
        assert volume.inputs["region"] == "fra1"


def test_droplets_join_the_vpc_the_program_creates(run: ProgramRun) -> None:
    (vpc,) = run.of_type(VPC)
    for droplet in run.of_type(DROPLET):
        assert droplet.inputs["vpcUuid"] == vpc.id


def test_an_existing_vpc_is_used_and_none_created(program: Any) -> None:
    vpc_id = "6b6a5e3c-1d2f-4a5b-9c8d-7e6f5a4b3c2d"
    run = program({"vpcId": vpc_id})
    assert run.of_type(VPC) == []
    assert {droplet.inputs["vpcUuid"] for droplet in run.of_type(DROPLET)} == {vpc_id}


def test_vpc_ip_range_is_passed_to_the_created_vpc(program: Any) -> None:
    run = program({"vpcIpRange": "10.110.16.0/24"})
    (vpc,) = run.of_type(VPC)
    assert vpc.inputs["ipRange"] == "10.110.16.0/24"


def test_droplets_carry_the_common_tag_the_cluster_tag_and_extra_tags(program: Any) -> None:
    run = program({"extraTags": ["team:platform", "env_prod"]})
    tag = cluster_tag(run)
    for droplet in run.of_type(DROPLET):
        assert droplet.inputs["tags"] == ["etcd", tag, "team:platform", "env_prod"]


def test_the_cluster_tag_is_specific_to_cluster_and_stack(program: Any) -> None:
    dev = cluster_tag(program())
    prod = cluster_tag(program(stack="prod"))
    other = cluster_tag(program({"clusterName": "events"}))
    assert len({dev, prod, other}) == 3
    assert "main" in dev and "dev" in dev


def test_two_clusters_never_share_a_cluster_tag_or_volume_names(program: Any) -> None:
    one = program({"clusterName": "main"}, stack="prod-eu")
    two = program({"clusterName": "main-prod"}, stack="eu")
    assert cluster_tag(one) != cluster_tag(two)
    names = {volume.inputs["name"] for volume in one.of_type(VOLUME)}
    assert names.isdisjoint(volume.inputs["name"] for volume in two.of_type(VOLUME))


# --- firewall ---------------------------------------------------------------------------

def test_firewall_applies_to_the_cluster_tag(run: ProgramRun) -> None:
    (firewall,) = run.of_type(FIREWALL)
    assert firewall.inputs["tags"] == [cluster_tag(run)]


def test_peer_port_is_open_only_between_members(sourced: ProgramRun) -> None:
    tags, cidrs = sources(inbound(sourced)[PEER_PORT])
    assert tags == {cluster_tag(sourced)}
    assert cidrs == set()


def test_client_port_is_open_to_members_and_the_configured_clients(sourced: ProgramRun) -> None:
    tags, cidrs = sources(inbound(sourced)[CLIENT_PORT])
    assert tags == {cluster_tag(sourced), "k8s-control-plane", "k8s-bastion"}
    assert cidrs == {"10.20.0.0/16"}


def test_client_port_defaults_to_members_and_the_control_plane_tag(run: ProgramRun) -> None:
    tags, cidrs = sources(inbound(run)[CLIENT_PORT])
    assert tags == {cluster_tag(run), "k8s-control-plane"}
    assert cidrs == set()


def test_metrics_port_is_open_only_to_monitoring_sources(sourced: ProgramRun) -> None:
    tags, cidrs = sources(inbound(sourced)[METRICS_PORT])
    assert tags == {"prometheus"}
    assert cidrs == {"10.30.0.0/24"}


def test_metrics_port_is_closed_without_monitoring_sources(run: ProgramRun) -> None:
    assert METRICS_PORT not in inbound(run)


def test_ssh_is_open_only_to_admin_cidrs(sourced: ProgramRun) -> None:
    tags, cidrs = sources(inbound(sourced)[SSH_PORT])
    assert tags == set()
    assert cidrs == {"198.51.100.0/24"}


def test_ssh_is_closed_without_admin_cidrs(run: ProgramRun) -> None:
    assert SSH_PORT not in inbound(run)


@pytest.mark.parametrize("config", [{}, SOURCES], ids=["defaults", "all-sources"])
def test_no_other_port_is_opened_and_nothing_to_the_whole_internet(program: Any,
                                                                   config: dict[str, Any]) -> None:
    rules = inbound(program(config))
    assert set(rules) <= {CLIENT_PORT, PEER_PORT, METRICS_PORT, SSH_PORT}
    for port, rule in rules.items():
        assert rule["protocol"] == "tcp", port
        for cidr in rule.get("sourceAddresses") or []:
            assert ipaddress.ip_network(cidr).prefixlen > 0, f"port {port} open to {cidr}"


WORLD_OPEN = [
    pytest.param("clientSourceCidrs", "the etcd client port 2379", id="client-port"),
    pytest.param("monitoringSourceCidrs", "the plain-HTTP metrics port 2381", id="metrics-port"),
    pytest.param("adminCidrs", "SSH", id="ssh"),
]


@pytest.mark.parametrize(("setting", "what"), WORLD_OPEN)
@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0"])
def test_a_source_cidr_covering_the_whole_internet_is_refused(setting: str, what: str,
                                                              world: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({setting: [world]})
    assert isinstance(failure.value.error, SettingsError)
    # One problem, for this reason: it names the setting, the value and what it would open.
    assert failure.value.error.problems == [
        f"etcd-cluster:{setting} = '{world}': opens {what} to the whole internet; list the "
        "networks that need it instead."]
    assert [resource.type for resource in failure.value.registrations] == [STACK]


# --- DNS --------------------------------------------------------------------------------

def a_records(run: ProgramRun) -> list[Any]:
    return [record for record in run.of_type(DNS_RECORD) if record.inputs["type"] == "A"]


def test_each_member_fqdn_has_an_unproxied_a_record_at_its_private_address(
        run: ProgramRun) -> None:
    droplets = {droplet.inputs["name"]: droplet for droplet in run.of_type(DROPLET)}
    records = {record.inputs["name"]: record for record in a_records(run)}
    assert set(records) == set(droplets)
    for fqdn, record in records.items():
        outputs = droplets[fqdn].outputs
        assert outputs is not None
        assert record.inputs["content"] == outputs["ipv4AddressPrivate"]
        assert ipaddress.ip_address(record.inputs["content"]).is_private
        assert record.inputs["proxied"] is False
        assert record.inputs["zoneId"] == "0123456789abcdef0123456789abcdef"


def test_a_records_have_a_short_ttl_by_default_and_follow_dns_ttl(program: Any) -> None:
    assert {record.inputs["ttl"] for record in a_records(program())} == {60}
    assert {record.inputs["ttl"] for record in a_records(program({"dnsTtl": 300}))} == {300}


def test_member_names_live_under_the_dns_subdomain(program: Any) -> None:
    run = program({"dnsSubdomain": "etcd.k8s", "dnsZone": "example.org"})
    names = sorted(record.inputs["name"] for record in a_records(run))
    assert names == [f"etcd-{n}.etcd.k8s.example.org" for n in (1, 2, 3)]


def test_no_srv_records_unless_asked(run: ProgramRun) -> None:
    assert {record.inputs["type"] for record in run.of_type(DNS_RECORD)} == {"A"}


def test_srv_records_point_discovery_at_every_member_when_asked(program: Any) -> None:
    run = program({"dnsSrvRecords": True})
    srv = [record for record in run.of_type(DNS_RECORD) if record.inputs["type"] == "SRV"]
    found = {(record.inputs["name"], record.inputs["data"]["port"], record.inputs["data"]["target"])
             for record in srv}
    fqdns = [f"etcd-{n}.main.example.com" for n in (1, 2, 3)]
    assert found == {
        *{("_etcd-server-ssl._tcp.main.example.com", 2380, fqdn) for fqdn in fqdns},
        *{("_etcd-client-ssl._tcp.main.example.com", 2379, fqdn) for fqdn in fqdns},
    }
    assert len(srv) == len(found)
    assert len(a_records(run)) == 3


# --- the component tree and the dependency graph ------------------------------------------

def test_every_resource_has_a_registered_parent(run: ProgramRun) -> None:
    seen: set[str] = set()
    for resource in run.registrations:
        if resource.type == STACK:
            assert resource.parent == ""
        else:
            assert resource.parent in seen, f"{resource.type} {resource.name}: {resource.parent!r}"
        seen.add(resource.urn)


def test_everything_lives_under_one_etcd_cluster_component(run: ProgramRun) -> None:
    stack = run.stack_resource
    top = [resource for resource in run.registrations if resource.parent == stack.urn]
    assert [(resource.type, resource.name) for resource in top] == [
        ("etcd-cluster:index:EtcdCluster", "main")]
    for resource in run.custom_resources:
        ancestors = list(run.ancestors(resource))
        assert ancestors[-1] == stack
        assert ancestors[-2] == top[0]
        assert not ancestors[0].custom, f"{resource.name} is parented to a custom resource"


def test_droplets_wait_for_their_certificates_and_dns_waits_for_droplets(run: ProgramRun) -> None:
    for member, droplet in run.named(DROPLET).items():
        waits_for = {run.by_urn[urn].short_name
                     for urn in droplet.property_dependencies["userData"]}
        assert {f"{member}-server-cert", f"{member}-peer-cert", "client-ca-cert",
                "peer-ca-cert"} <= waits_for
    droplet_urns = {name: droplet.urn for name, droplet in run.named(DROPLET).items()}
    for record in a_records(run):
        member = record.inputs["name"].split(".")[0]
        assert droplet_urns[member] in record.property_dependencies["content"]


def test_creation_depth_is_the_pki_chain_then_droplet_then_dns(run: ProgramRun) -> None:
    # key -> CA cert -> member cert -> droplet -> DNS record / volume attachment
    assert run.creation_depth() == 5


# --- member counts and bad settings -----------------------------------------------------

@pytest.mark.parametrize("count", [1, 3, 5, 7])
def test_member_count_gives_that_many_members(program: Any, count: int) -> None:
    run = program({"memberCount": count})
    droplets = run.of_type(DROPLET)
    assert len(droplets) == count
    assert len(run.of_type(VOLUME)) == len(run.of_type(VOLUME_ATTACHMENT)) == count
    assert len(a_records(run)) == count
    assert len({droplet.inputs["name"] for droplet in droplets}) == count
    assert len({record.inputs["content"] for record in a_records(run)}) == count
    assert run.creation_depth() == 5


BAD_SETTINGS = {
    "even-member-count": ({"memberCount": 4}, "memberCount"),
    "missing-dns-zone": ({"dnsZone": None}, "dnsZone"),
    "bad-zone-id": ({"cloudflareZoneId": "not-a-zone-id"}, "cloudflareZoneId"),
    "unknown-key-algorithm": ({"keyAlgorithm": "ecdsa-p224"}, "keyAlgorithm"),
    "client-port-to-internet": ({"clientSourceCidrs": ["0.0.0.0/0"]}, "clientSourceCidrs"),
    "typo-in-a-key": ({"memberCont": 3}, "memberCont"),
    "unsupported-etcd-line": ({"etcdVersion": "3.3.27"}, "etcdVersion"),
    "election-below-5x-heartbeat": ({"electionTimeoutMs": 400}, "electionTimeoutMs"),
    "not-a-number": ({"memberCount": "three"}, "memberCount"),
}


@pytest.mark.parametrize("config,setting", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_stop_the_program_before_any_resource_is_registered(
        config: dict[str, Any], setting: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(config)
    assert isinstance(failure.value.error, SettingsError)
    assert f"etcd-cluster:{setting}" in str(failure.value.error)
    assert [resource.type for resource in failure.value.registrations] == [STACK]


def test_a_stack_name_that_is_not_a_dns_label_is_refused() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(stack="Prod_EU")
    assert isinstance(failure.value.error, SettingsError)
    assert "stack name" in str(failure.value.error)
    assert [resource.type for resource in failure.value.registrations] == [STACK]


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program({"memberCount": 2, "dnsTtl": 5, "dataVolumeSizeGib": 0})
    error = failure.value.error
    assert isinstance(error, SettingsError)
    assert len(error.problems) == 3


# --- the harness itself -----------------------------------------------------------------

def test_main_exports_exactly_the_cluster_outputs(run: ProgramRun) -> None:
    cluster = run.program_globals["main_cluster"]
    assert set(run.outputs) == set(cluster.outputs)


def test_building_the_component_directly_registers_the_same_resources(run: ProgramRun) -> None:
    direct = run_program(program=run_component_program)
    assert sorted((r.type, r.name, r.parent) for r in direct.registrations) == sorted(
        (r.type, r.name, r.parent) for r in run.registrations)


def test_runs_of_different_stacks_do_not_share_state(program: Any) -> None:
    dev, prod = program(), program(stack="prod")
    assert [r.type for r in dev.registrations].count(STACK) == 1
    assert [r.type for r in prod.registrations].count(STACK) == 1
    assert all(r.urn.startswith("urn:pulumi:dev::") for r in dev.registrations)
    assert all(r.urn.startswith("urn:pulumi:prod::") for r in prod.registrations)


def _failing_apply() -> dict[str, Any]:
    pulumi.Output.from_input(1).apply(lambda _: 1 // 0)
    return {}


def _unknown_curve() -> dict[str, Any]:
    tls.PrivateKey("weak", algorithm="ECDSA", ecdsa_curve="P192")
    return {}


def test_an_exception_inside_apply_fails_the_run() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(program=_failing_apply)
    assert isinstance(failure.value.error, ZeroDivisionError)


def test_the_tls_mock_refuses_an_unknown_curve_loudly() -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(program=_unknown_curve)
    assert isinstance(failure.value.error, TlsMockError)
    assert "P192" in str(failure.value.error)
