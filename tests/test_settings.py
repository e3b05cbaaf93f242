"""Settings: defaults, parsing of what `pulumi config` stores, and one test per validation rule."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from model import releases
from model.backup import MaintenanceSpec
from model.cluster_spec import main_cluster
from model.settings import (
    SPEC_BY_KEY,
    SPECS,
    EtcdTuning,
    LocalVmSettings,
    Settings,
    SettingsError,
    load_settings,
    schema,
)

REQUIRED = {"dnsZone": "example.com", "cloudflareZoneId": "0123456789abcdef0123456789abcdef"}


def load(stack: str = "dev", **overrides: Any) -> Any:
    return load_settings({**REQUIRED, **overrides}, stack)


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(**overrides)
    return caught.value.problems


def only_problem(**overrides: Any) -> str:
    found = problems(**overrides)
    assert len(found) == 1, found
    return found[0]


def test_defaults_give_a_three_member_cluster_on_the_default_etcd_release() -> None:
    settings = load()
    assert settings.member_count == 3
    assert settings.etcd_version == releases.DEFAULT_VERSION
    assert settings.etcd_sha256 == releases.known_sha256(releases.DEFAULT_VERSION)
    assert settings.key_algorithm == "ecdsa-p256"
    assert settings.tuning.heartbeat_interval_ms == 100
    assert settings.tuning.election_timeout_ms == 1000
    assert settings.protect_members is True


def test_cluster_name_defaults_to_the_stack_and_names_the_dns_subdomain() -> None:
    settings = load(stack="prod")
    assert settings.cluster_name == "prod"
    assert settings.dns_domain == "prod.example.com"


def test_values_stored_as_strings_by_pulumi_config_are_parsed() -> None:
    settings = load(memberCount="5", dnsSrvRecords="true", clientSourceCidrs='["10.0.0.0/16"]')
    assert settings.member_count == 5
    assert settings.dns_srv_records is True
    assert settings.client_source_cidrs == ("10.0.0.0/16",)


def test_every_problem_is_reported_at_once() -> None:
    found = problems(memberCount=4, heartbeatIntervalMs=300, quotaBackendBytes=9 * 1024**3)
    assert len(found) == 3


def test_cluster_token_is_unique_per_stack_and_cluster() -> None:
    tokens = {main_cluster(load(stack=stack, clusterName=name)).cluster_token
              for stack in ("dev", "prod") for name in ("a", "b")}
    assert len(tokens) == 4


@pytest.mark.parametrize("count", [0, 2, 4, 9])
def test_member_count_must_be_odd_and_at_most_seven(count: int) -> None:
    message = only_problem(memberCount=count)
    assert message.startswith(f"etcd-cluster:memberCount = {count}:")
    assert "quorum" in message and "Use 3" in message


@pytest.mark.parametrize("count", [1, 3, 5, 7])
def test_member_counts_one_three_five_seven_are_accepted(count: int) -> None:
    assert load(memberCount=count).member_count == count


def test_member_count_must_be_a_number() -> None:
    assert "whole number" in only_problem(memberCount="three")


@pytest.mark.parametrize("key", ["clientSourceCidrs", "monitoringSourceCidrs", "adminCidrs"])
def test_a_malformed_cidr_is_rejected_with_an_example(key: str) -> None:
    message = only_problem(**{key: ["10.0.0.300/8"]})
    assert message.startswith(f"etcd-cluster:{key} = '10.0.0.300/8':")
    assert "e.g. 10.10.0.0/16" in message


def test_a_cidr_with_host_bits_set_is_rejected() -> None:
    assert "valid CIDR" in only_problem(adminCidrs=["10.0.0.1/8"])


@pytest.mark.parametrize("key", ["clientSourceCidrs", "monitoringSourceCidrs", "adminCidrs"])
@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0"])
def test_no_port_can_be_opened_to_the_whole_internet(key: str, world: str) -> None:
    assert "to the whole internet" in only_problem(**{key: [world]})


def test_vpc_range_must_be_private() -> None:
    assert "private range" in only_problem(vpcIpRange="8.8.8.0/24")


@pytest.mark.parametrize("version", ["3.3.27", "4.0.0", "3.8.0"])
def test_an_unknown_etcd_version_line_is_rejected(version: str) -> None:
    message = only_problem(etcdVersion=version, etcdSha256="a" * 64)
    assert "does not generate flags for" in message and "3.4, 3.5, 3.6, 3.7" in message


@pytest.mark.parametrize("version", ["3.6", "3.6.x", "latest", "3.6.0-rc.1", "03.6.1"])
def test_a_bad_version_string_is_rejected(version: str) -> None:
    message = only_problem(etcdVersion=version, etcdSha256="a" * 64)
    assert "MAJOR.MINOR.PATCH" in message


def test_a_leading_v_in_the_version_is_rejected_with_the_fix() -> None:
    assert "without the leading v: 3.6.14" in only_problem(etcdVersion="v3.6.14", etcdSha256="a" * 64)


def test_a_version_without_a_built_in_checksum_needs_etcd_sha256() -> None:
    message = only_problem(etcdVersion="3.6.1")
    assert "set etcdSha256" in message
    assert load(etcdVersion="3.6.1", etcdSha256="A" * 64).etcd_sha256 == "a" * 64


def test_etcd_3_6_0_is_refused_because_its_etcdctl_breaks_the_health_gates() -> None:
    message = only_problem(etcdVersion="3.6.0", etcdSha256="a" * 64)
    assert "etcd-io/etcd#20118" in message and "use a later 3.6 release (e.g. 3.6.14)" in message


def test_a_malformed_checksum_is_rejected() -> None:
    assert "64 hexadecimal" in only_problem(etcdSha256="abc")


def test_a_mirror_url_with_a_version_placeholder_keeps_the_built_in_checksum() -> None:
    url = "https://mirror.internal/etcd/v{version}/etcd-v{version}-linux-amd64.tar.gz"
    settings = load(etcdDownloadUrl=url)
    assert settings.etcd_sha256 == releases.known_sha256(settings.etcd_version)


def test_a_fixed_download_url_needs_its_own_checksum() -> None:
    assert "etcdSha256" in only_problem(etcdDownloadUrl="https://mirror.internal/etcd.tar.gz")


def test_the_download_url_must_be_http() -> None:
    assert "http(s) URL" in only_problem(etcdDownloadUrl="ftp://mirror/etcd.tar.gz")


def test_election_timeout_below_five_heartbeats_is_rejected() -> None:
    message = only_problem(heartbeatIntervalMs=200, electionTimeoutMs=900)
    assert "at least 5x heartbeatIntervalMs (200 ms, so at least 1000 ms)" in message


def test_election_timeout_of_exactly_five_heartbeats_is_accepted() -> None:
    assert load(heartbeatIntervalMs=200, electionTimeoutMs=1000).tuning.election_timeout_ms == 1000


def test_backend_quota_above_8_gib_is_rejected() -> None:
    message = only_problem(quotaBackendBytes=8 * 1024**3 + 1)
    assert "above 8 GiB" in message and "8589934592" in message


def test_backend_quota_of_8_gib_is_accepted() -> None:
    assert load(quotaBackendBytes=8 * 1024**3).tuning.quota_backend_bytes == 8 * 1024**3


def test_a_missing_zone_is_rejected_with_the_command_that_sets_it() -> None:
    found = problems(dnsZone="")
    assert any("dnsZone = None: is required" in p and "pulumi config set dnsZone" in p
               for p in found)


def test_a_missing_cloudflare_zone_id_is_rejected() -> None:
    assert "is required" in only_problem(cloudflareZoneId="")


def test_a_malformed_cloudflare_zone_id_is_rejected() -> None:
    assert "32 hexadecimal" in only_problem(cloudflareZoneId="my-zone")


@pytest.mark.parametrize("name", ["Prod", "prod_1", "-prod", "prod-", "a" * 64, "pr.od"])
def test_a_cluster_name_that_is_not_a_dns_label_is_rejected(name: str) -> None:
    assert "must be a DNS label" in only_problem(clusterName=name)


def test_a_cluster_name_too_long_for_volume_names_is_rejected_with_the_longest_allowed() -> None:
    message = only_problem(clusterName="a" * 60)
    assert "longer than 64 characters" in message and "at most 46 characters" in message
    assert load(clusterName="a" * 46).cluster_name == "a" * 46


def test_a_subdomain_part_that_is_not_a_dns_label_is_rejected() -> None:
    assert "DNS label" in only_problem(dnsSubdomain="etcd.Prod")


def test_a_zone_that_is_not_a_domain_name_is_rejected() -> None:
    assert "domain name" in only_problem(dnsZone="example_com")


def test_a_stack_name_that_is_not_a_dns_label_is_rejected() -> None:
    with pytest.raises(SettingsError, match="pulumi stack rename"):
        load(stack="Prod_EU")


def test_an_unknown_setting_is_named_with_the_known_ones() -> None:
    message = only_problem(memberCnt=3)
    assert "memberCnt is not a setting" in message and "memberCount" in message


def test_an_unknown_key_algorithm_is_rejected() -> None:
    assert "ecdsa-p256" in only_problem(keyAlgorithm="ed25519")


def test_a_ca_must_outlive_the_certificates_it_signs() -> None:
    assert "must outlive" in only_problem(
        caValidityHours=100, certValidityHours=200, certEarlyRenewalHours=24)


def test_early_renewal_must_start_before_expiry() -> None:
    assert "before the certificate expires" in only_problem(
        certValidityHours=100, certEarlyRenewalHours=100)


def test_auto_compaction_mode_must_be_periodic_or_revision() -> None:
    assert "periodic" in only_problem(autoCompactionMode="hourly")


def test_periodic_compaction_needs_a_duration() -> None:
    assert "duration" in only_problem(autoCompactionRetention="soon")


def test_revision_compaction_needs_a_count() -> None:
    assert "number of revisions" in only_problem(
        autoCompactionMode="revision", autoCompactionRetention="8h")


def test_dns_ttl_must_be_one_cloudflare_accepts() -> None:
    assert "60-86400" in only_problem(dnsTtl=30)


def test_data_volume_size_must_be_one_digitalocean_offers() -> None:
    assert "1 GiB to 16 TiB" in only_problem(dataVolumeSizeGib=0)


def test_a_tag_digitalocean_refuses_is_rejected() -> None:
    assert "DigitalOcean tag" in only_problem(clientSourceTags=["control plane"])


def test_a_list_setting_given_as_a_plain_string_explains_the_list_syntax() -> None:
    assert "--path" in only_problem(adminCidrs="10.0.0.0/8")


def test_every_setting_has_a_description() -> None:
    assert all(spec.description.endswith(".") for spec in SPECS)


def test_a_vpc_id_that_is_not_a_uuid_is_rejected() -> None:
    assert "VPC UUID" in only_problem(vpcId="my-vpc")


def test_an_existing_vpc_is_used_by_its_uuid() -> None:
    assert load(vpcId="5a4981aa-9653-4bd1-bef5-d6bff52042e4").vpc_id == (
        "5a4981aa-9653-4bd1-bef5-d6bff52042e4")


def test_an_ssh_key_must_be_an_id_or_a_fingerprint() -> None:
    assert "SSH key ID or MD5 fingerprint" in only_problem(adminSshKeys=["ssh-ed25519 AAAA"])
    fingerprint = ":".join(["3b"] * 16)
    assert load(adminSshKeys=["512190", fingerprint]).admin_ssh_keys == ("512190", fingerprint)


@pytest.mark.parametrize("key", ["dnsSrvRecords", "protectMembers"])
def test_a_flag_that_is_not_true_or_false_is_rejected(key: str) -> None:
    assert only_problem(**{key: "yes"}) == f"etcd-cluster:{key} = 'yes': must be true or false."


def test_a_setting_of_the_wrong_type_is_rejected_not_replaced_by_its_default() -> None:
    assert only_problem(dropletSize=4) == "etcd-cluster:dropletSize = 4: must be a string."


# The dataclass fields with a default, and the setting whose default they repeat.
DEFAULTS_FROM_SPECS: dict[type, dict[str, str]] = {
    EtcdTuning: {
        "heartbeat_interval_ms": "heartbeatIntervalMs", "election_timeout_ms": "electionTimeoutMs",
        "quota_backend_bytes": "quotaBackendBytes", "auto_compaction_mode": "autoCompactionMode",
        "auto_compaction_retention": "autoCompactionRetention", "snapshot_count": "snapshotCount",
    },
    LocalVmSettings: {
        "network_cidr": "localNetworkCidr", "nameservers": "localNameservers", "cpus": "vmCpus",
        "memory_mib": "vmMemoryMib", "boot_timeout_seconds": "vmBootTimeoutSeconds",
        "state_dir": "localStateDir", "qemu_image_dir": "qemuImageDir", "qemu_bridge": "qemuBridge",
        "qemu_accel": "qemuAccel", "virtualbox_base_vm": "virtualboxBaseVm",
        "virtualbox_hostonly_adapter": "virtualboxHostOnlyAdapter",
        "virtualbox_storage_controller": "virtualboxStorageController",
    },
    Settings: {
        "extra_tags": "extraTags", "cert_expiry_warning_days": "certExpiryWarningDays",
        "backend": "backend", "install_packages": "installPackages",
        # None: no backups, no restore (no bucket, nothing to restore from).
        "backup": "backupBucket", "restore": "restoreFrom",
    },
    MaintenanceSpec: {"defrag_schedule": "defragSchedule"},
}


@pytest.mark.parametrize("model", list(DEFAULTS_FROM_SPECS), ids=lambda model: model.__name__)
def test_the_dataclass_defaults_equal_the_schemas(model: type) -> None:
    fields = {field.name: field for field in dataclasses.fields(model)}
    # Every plain default is covered (Settings.local's factory is LocalVmSettings, checked too).
    with_default = {name for name, field in fields.items() if field.default is not dataclasses.MISSING}
    assert with_default == set(DEFAULTS_FROM_SPECS[model]), model.__name__
    for name, key in DEFAULTS_FROM_SPECS[model].items():
        default = fields[name].default
        expected = SPEC_BY_KEY[key].default
        assert (list(default) if isinstance(default, tuple) else default) == expected, (name, key)


def test_a_renamed_setting_names_its_new_name_not_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    # No setting has been renamed yet: the mechanism is tested with an entry of the test's own.
    monkeypatch.setitem(schema.RENAMED_SETTINGS, "etcdMembers",
                        ("memberCount", "the name says what it counts."))
    assert only_problem(etcdMembers=3) == (
        "etcd-cluster:etcdMembers was renamed to memberCount: the name says what it counts. "
        "Move the value with `pulumi config set memberCount <value>` and "
        "`pulumi config rm etcdMembers`.")


def test_a_removed_setting_says_why_it_went_not_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(schema.REMOVED_SETTINGS, "etcdAutoTls",
                        "members always use the certificates this program issues.")
    assert only_problem(etcdAutoTls=True) == (
        "etcd-cluster:etcdAutoTls was removed: members always use the certificates this program "
        "issues. Remove it with `pulumi config rm etcdAutoTls`.")


def test_renamed_and_removed_settings_are_not_current_settings() -> None:
    for key, (new_key, _) in schema.RENAMED_SETTINGS.items():
        assert key not in SPEC_BY_KEY and new_key in SPEC_BY_KEY, key
    for key in schema.REMOVED_SETTINGS:
        assert key not in SPEC_BY_KEY, key
