"""Each policy's validate (or remediate) function called directly with hand-made arguments."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import etcd_policies as ep
import pytest
import yaml
from conftest import (
    CLUSTER_TAG,
    GOOD_FLAGS,
    MEMBERS_URN,
    Violations,
    droplet_props,
    options,
    policy_resource,
    resource_args,
    stack_args,
    unit_text,
    user_data,
)
from pulumi_policy import EnforcementLevel, Secret
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_STRING_VALUE, UnknownValueError

SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
ALL_REBUILD = ["userData", "image", "sshKeys"]


def droplets(count: int, tag: str = CLUSTER_TAG, parent: str | None = MEMBERS_URN) -> list[Any]:
    return [policy_resource(ep.DROPLET, f"etcd-{n}", droplet_props(tags=["etcd", tag]),
                            parent=parent)
            for n in range(1, count + 1)]


# --- etcd-member-count ------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 3, 5, 7])
def test_a_cluster_of_one_three_five_or_seven_members_passes(count: int) -> None:
    violations = Violations()
    ep.validate_member_count(stack_args(droplets(count)), violations)
    assert violations == []


@pytest.mark.parametrize("count", [2, 4, 6, 8, 9])
def test_an_even_count_or_more_than_seven_members_is_a_violation(count: int) -> None:
    violations = Violations()
    ep.validate_member_count(stack_args(droplets(count)), violations)
    (message,) = violations
    assert message.startswith(f"cluster {CLUSTER_TAG} has {count} members (etcd-1, ")
    assert "Use 3, 5 or 7" in message


def test_members_are_counted_per_cluster_tag() -> None:
    violations = Violations()
    resources = [*droplets(3, "etcd:dev:a"), *droplets(2, "etcd:dev:b"), *droplets(5, "etcd:prod:a")]
    ep.validate_member_count(stack_args(resources), violations)
    assert len(violations) == 1
    assert violations[0].startswith("cluster etcd:dev:b has 2 members")


def test_droplets_without_the_etcd_tag_and_other_resources_are_not_members() -> None:
    violations = Violations()
    others = [
        policy_resource(ep.DROPLET, "web", droplet_props(tags=["web"])),
        policy_resource(ep.VOLUME, "etcd-1-data", {"tags": ["etcd", CLUSTER_TAG]}),
    ]
    ep.validate_member_count(stack_args([*droplets(3), *others]), violations)
    assert violations == []


def test_members_whose_cluster_tag_is_unknown_at_preview_are_counted_by_their_component() -> None:
    violations = Violations()
    unknown_tag = [policy_resource(ep.DROPLET, f"etcd-{n}",
                                   droplet_props(tags=["etcd", UNKNOWN_STRING_VALUE]))
                   for n in (1, 2)]
    ep.validate_member_count(stack_args(unknown_tag), violations)
    (message,) = violations
    assert message.startswith(f"cluster members of {MEMBERS_URN} has 2 members")


# --- etcd-droplet-ignores-rebuild-changes ---------------------------------------------------------

def test_an_etcd_droplet_that_ignores_user_data_image_and_ssh_key_changes_passes() -> None:
    violations = Violations()
    args = resource_args(ep.DROPLET, droplet_props(), opts=options(ignore_changes=ALL_REBUILD))
    ep.validate_ignores_rebuild_changes(args, violations)
    assert violations == []


def test_ignoring_every_change_passes() -> None:
    violations = Violations()
    args = resource_args(ep.DROPLET, droplet_props(), opts=options(ignore_changes=["*"]))
    ep.validate_ignores_rebuild_changes(args, violations)
    assert violations == []


def test_an_etcd_droplet_that_would_be_rebuilt_on_a_user_data_change_is_a_violation() -> None:
    violations = Violations()
    args = resource_args(ep.DROPLET, droplet_props(),
                         opts=options(ignore_changes=["image", "sshKeys"]))
    ep.validate_ignores_rebuild_changes(args, violations)
    (message,) = violations
    assert message.startswith("etcd droplet etcd-1 does not ignore changes to userData:")
    assert "loses quorum" in message


def test_every_rebuild_property_not_ignored_is_named() -> None:
    violations = Violations()
    ep.validate_ignores_rebuild_changes(resource_args(ep.DROPLET, droplet_props()), violations)
    assert "does not ignore changes to userData, image, sshKeys:" in violations[0]


def test_droplets_that_are_not_etcd_members_may_be_rebuilt() -> None:
    violations = Violations()
    args = resource_args(ep.DROPLET, droplet_props(tags=["web"]))
    ep.validate_ignores_rebuild_changes(args, violations)
    assert violations == []


# --- etcd-members-protected ---------------------------------------------------------------------------

@pytest.mark.parametrize("resource_type", [ep.DROPLET, ep.VOLUME])
def test_a_protected_etcd_droplet_or_volume_passes(resource_type: str) -> None:
    violations = Violations()
    args = resource_args(resource_type, droplet_props(), opts=options(protect=True))
    ep.validate_protected(args, violations)
    assert violations == []


@pytest.mark.parametrize(("resource_type", "what"), [(ep.DROPLET, "droplet"),
                                                     (ep.VOLUME, "data volume")])
def test_an_unprotected_etcd_droplet_or_volume_is_reported(resource_type: str, what: str) -> None:
    violations = Violations()
    ep.validate_protected(resource_args(resource_type, droplet_props(), name="etcd-2"), violations)
    (message,) = violations
    assert message.startswith(f"etcd {what} etcd-2 is not protected")


def test_the_protection_check_is_advisory_because_protect_members_may_be_off() -> None:
    assert ep.members_protected.enforcement_level == EnforcementLevel.ADVISORY


# --- etcd-user-data-secret ------------------------------------------------------------------------------

def remediation_props(user_data_value: Any) -> Any:
    """Inputs as the SDK's Remediate hands them over: secrets kept (proxy_secrets=True)."""
    wire = {"tags": ["etcd", CLUSTER_TAG], "image": "debian-12-x64"}
    if user_data_value is not None:
        wire["userData"] = user_data_value
    return deserialize_properties(wire, True)


def test_plain_text_user_data_is_remediated_into_a_secret() -> None:
    text = user_data()
    args = resource_args(ep.DROPLET, {})
    args.props = remediation_props(text)
    fixed = ep.remediate_user_data_secret(args)
    assert fixed is not None
    assert isinstance(fixed["userData"], Secret)
    assert fixed["userData"].value == text
    assert fixed["image"] == "debian-12-x64"


def test_user_data_that_is_already_secret_needs_no_remediation() -> None:
    args = resource_args(ep.DROPLET, {})
    args.props = remediation_props({**SECRET_SIG, "value": user_data()})
    assert ep.remediate_user_data_secret(args) is None


def test_user_data_unknown_at_preview_is_still_marked_secret() -> None:
    args = resource_args(ep.DROPLET, {})
    args.props = remediation_props(UNKNOWN_STRING_VALUE)
    fixed = ep.remediate_user_data_secret(args)
    assert fixed is not None and fixed["userData"].value == UNKNOWN_STRING_VALUE


def test_droplets_without_user_data_or_not_in_etcd_are_left_alone() -> None:
    args = resource_args(ep.DROPLET, {})
    args.props = remediation_props(None)
    assert ep.remediate_user_data_secret(args) is None
    web = resource_args(ep.DROPLET, {})
    web.props = deserialize_properties({"tags": ["web"], "userData": "#cloud-config\n"}, True)
    assert ep.remediate_user_data_secret(web) is None


def test_plain_hand_made_props_are_remediated_too() -> None:
    fixed = ep.remediate_user_data_secret(resource_args(ep.DROPLET, droplet_props()))
    assert fixed is not None and isinstance(fixed["userData"], Secret)


def test_the_secret_check_is_a_remediation_because_validations_never_see_secretness() -> None:
    # The SDK's Analyze unwraps secrets before a validation runs: the same input, secret or not,
    # reaches a validation as the same plain string.
    plain = deserialize_properties({"userData": "x"})
    secret = deserialize_properties({"userData": {**SECRET_SIG, "value": "x"}})
    assert plain == secret == {"userData": "x"}
    assert ep.user_data_secret.enforcement_level == EnforcementLevel.REMEDIATE
    assert not ep.user_data_secret.has_validation()


# --- etcd-firewall-closed-to-internet --------------------------------------------------------------

def firewall(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"name": "etcd-main-dev-firewall", "tags": [CLUSTER_TAG], "inboundRules": list(rules)}


def test_a_firewall_admitting_etcd_ports_by_tag_and_private_cidr_passes() -> None:
    violations = Violations()
    props = firewall(
        {"protocol": "tcp", "portRange": "2379", "sourceTags": [CLUSTER_TAG, "k8s"],
         "sourceAddresses": ["10.0.0.0/8"]},
        {"protocol": "tcp", "portRange": "2380", "sourceTags": [CLUSTER_TAG]},
        {"protocol": "tcp", "portRange": "22", "sourceAddresses": ["0.0.0.0/0"]},
        {"protocol": "udp", "portRange": "1-65535", "sourceAddresses": ["0.0.0.0/0"]},
    )
    ep.validate_firewall(resource_args(ep.FIREWALL, props), violations)
    assert violations == []


@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0", "0.0.0.0/0 ", "::0/0"])
@pytest.mark.parametrize(("ports", "named"), [("2379", "2379 (client)"),
                                              ("2380", "2380 (peer)"),
                                              ("2381", "2381 (metrics (plain HTTP))")])
def test_an_etcd_port_open_to_the_whole_internet_is_a_violation(world: str, ports: str,
                                                                named: str) -> None:
    violations = Violations()
    props = firewall({"protocol": "tcp", "portRange": ports, "sourceAddresses": [world]})
    ep.validate_firewall(resource_args(ep.FIREWALL, props, name="fw"), violations)
    (message,) = violations
    assert message.startswith(f"firewall fw opens {named} to {world}: the whole internet")


@pytest.mark.parametrize("ports", ["1-65535", "2000-3000", "all", "", None])
def test_a_port_range_covering_etcd_ports_open_to_the_internet_is_a_violation(ports: Any) -> None:
    violations = Violations()
    rule: dict[str, Any] = {"protocol": "tcp", "sourceAddresses": ["10.1.0.0/16", "::/0"]}
    if ports is not None:
        rule["portRange"] = ports
    ep.validate_firewall(resource_args(ep.FIREWALL, firewall(rule), name="fw"), violations)
    (message,) = violations
    assert "opens 2379 (client), 2380 (peer), 2381 (metrics (plain HTTP)) to ::/0" in message


def test_firewall_rules_unknown_at_preview_are_not_applicable_yet() -> None:
    args = resource_args(ep.FIREWALL, {"inboundRules": UNKNOWN_ARRAY_VALUE})
    with pytest.raises(_NotApplicableError):
        ep.validate_firewall(args, Violations())


def test_a_rule_whose_sources_are_unknown_at_preview_is_skipped_not_failed() -> None:
    violations = Violations()
    props = firewall({"protocol": "tcp", "portRange": "2379",
                      "sourceAddresses": [UNKNOWN_STRING_VALUE, "10.0.0.0/8"]})
    ep.validate_firewall(resource_args(ep.FIREWALL, props), violations)
    assert violations == []


# --- etcd-mutual-tls ------------------------------------------------------------------------------------

def mutual_tls_violations(text: str) -> Violations:
    violations = Violations()
    ep.validate_mutual_tls(resource_args(ep.DROPLET, droplet_props(user_data_text=text)),
                           violations)
    return violations


def without(prefix: str) -> list[str]:
    return [flag for flag in GOOD_FLAGS if not flag.startswith(f"--{prefix}=")]


def test_a_member_requiring_client_and_peer_certificates_passes() -> None:
    assert mutual_tls_violations(user_data()) == []


def test_bare_boolean_flags_count_as_on() -> None:
    flags = [*without("client-cert-auth"), "--client-cert-auth"]
    assert mutual_tls_violations(user_data(flags)) == []


@pytest.mark.parametrize("flag", ["client-cert-auth", "peer-client-cert-auth"])
@pytest.mark.parametrize("value", [None, "false", "0"])
def test_client_or_peer_certificate_auth_off_or_missing_is_a_violation(flag: str,
                                                                      value: str | None) -> None:
    flags = without(flag) + ([] if value is None else [f"--{flag}={value}"])
    (message,) = mutual_tls_violations(user_data(flags))
    assert message.startswith(f"etcd droplet etcd-1: --{flag} is not true.")


@pytest.mark.parametrize("flag", ["auto-tls", "peer-auto-tls"])
@pytest.mark.parametrize("spelling", ["--{}", "--{}=true", "-{}=1", "--{}=yes"])
def test_auto_tls_in_any_spelling_is_a_violation(flag: str, spelling: str) -> None:
    (message,) = mutual_tls_violations(user_data([*GOOD_FLAGS, spelling.format(flag)]))
    assert f"--{flag} is on" in message


def test_auto_tls_explicitly_off_passes() -> None:
    assert mutual_tls_violations(user_data([*GOOD_FLAGS, "--auto-tls=false"])) == []


def test_auto_tls_from_the_units_environment_is_a_violation() -> None:
    unit = unit_text(GOOD_FLAGS, extra_service=['Environment="ETCD_PEER_AUTO_TLS=true"'])
    (message,) = mutual_tls_violations(user_data(unit=unit))
    assert "Environment=ETCD_PEER_AUTO_TLS=true turns auto-TLS on" in message


def test_an_environment_file_the_policy_cannot_read_is_a_violation() -> None:
    unit = unit_text(GOOD_FLAGS, extra_service=["EnvironmentFile=/etc/default/etcd"])
    (message,) = mutual_tls_violations(user_data(unit=unit))
    assert "EnvironmentFile=/etc/default/etcd is set" in message


INITIAL_CLUSTER_UNIT = unit_text(
    GOOD_FLAGS, extra_service=["EnvironmentFile=-/etc/etcd/initial-cluster.env"])


def with_initial_cluster_file(unit: str, content: str | None) -> str:
    document = yaml.safe_load(user_data(unit=unit).removeprefix("#cloud-config\n"))
    if content is not None:
        document["write_files"].append({"path": "/etc/etcd/initial-cluster.env",
                                        "content": content, "permissions": "0644"})
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


@pytest.mark.parametrize("content", [
    None,  # a joining member: etcd-member-join writes the file
    "# first start only\nETCD_INITIAL_CLUSTER=etcd-1=https://etcd-1.main.example.com:2380\n"
    "ETCD_INITIAL_CLUSTER_STATE=new\n",
])
def test_the_initial_cluster_file_as_the_only_environment_file_passes(content: str | None) -> None:
    assert mutual_tls_violations(with_initial_cluster_file(INITIAL_CLUSTER_UNIT, content)) == []


def test_an_initial_cluster_file_that_sets_anything_else_is_a_violation() -> None:
    content = "ETCD_INITIAL_CLUSTER_STATE=new\nETCD_AUTO_TLS=true\n"
    (message,) = mutual_tls_violations(with_initial_cluster_file(INITIAL_CLUSTER_UNIT, content))
    assert "/etc/etcd/initial-cluster.env sets ETCD_AUTO_TLS, not only ETCD_INITIAL_CLUSTER" in message


def test_a_config_file_which_overrides_every_flag_is_a_violation() -> None:
    (message,) = mutual_tls_violations(user_data([*GOOD_FLAGS, "--config-file=/etc/etcd.yaml"]))
    assert "--config-file is set" in message


@pytest.mark.parametrize("flag", ["trusted-ca-file", "peer-trusted-ca-file", "cert-file",
                                  "key-file", "peer-cert-file", "peer-key-file"])
def test_a_missing_certificate_or_trusted_ca_flag_is_a_violation(flag: str) -> None:
    (message,) = mutual_tls_violations(user_data(without(flag)))
    assert f"--{flag} is not set" in message


@pytest.mark.parametrize("flag", ["listen-client-urls", "listen-peer-urls"])
def test_plain_http_client_or_peer_urls_are_a_violation(flag: str) -> None:
    port = 2379 if "client" in flag else 2380
    flags = [*without(flag), f"--{flag}=https://10.0.0.1:{port},http://127.0.0.1:{port}"]
    (message,) = mutual_tls_violations(user_data(flags))
    assert f"--{flag} has URLs that are not https: http://127.0.0.1:{port}" in message


def test_the_plain_http_metrics_url_is_allowed() -> None:
    assert "--listen-metrics-urls=http://0.0.0.0:2381" in GOOD_FLAGS
    assert mutual_tls_violations(user_data()) == []


def test_user_data_without_an_etcd_unit_is_a_violation() -> None:
    (message,) = mutual_tls_violations("#cloud-config\nruncmd: [[echo, hi]]\n")
    assert "its user-data writes no /etc/systemd/system/etcd.service" in message


def test_user_data_that_is_not_yaml_is_a_violation() -> None:
    (message,) = mutual_tls_violations("#cloud-config\nwrite_files: [\n")
    assert "cannot be read as cloud-config" in message


def test_an_etcd_droplet_without_user_data_is_a_violation() -> None:
    violations = Violations()
    props = {**droplet_props(), "userData": ""}
    ep.validate_mutual_tls(resource_args(ep.DROPLET, props), violations)
    assert violations == ["etcd droplet etcd-1 has no user-data, so nothing installs etcd with "
                          "mutual TLS on it."]


def test_a_unit_written_base64_and_gzip_encoded_is_read() -> None:
    unit = unit_text(without("client-cert-auth"))
    document = {"write_files": [{
        "path": "/etc/systemd/system/etcd.service", "encoding": "gz+b64",
        "content": base64.b64encode(gzip.compress(unit.encode())).decode()}]}
    (message,) = mutual_tls_violations("#cloud-config\n" + yaml.safe_dump(document))
    assert "--client-cert-auth is not true" in message


def test_continued_exec_start_lines_are_joined() -> None:
    unit = unit_text(GOOD_FLAGS).replace(" --client-cert-auth=true", " \\\n    --client-cert-auth=true")
    assert mutual_tls_violations(user_data(unit=unit)) == []


def test_user_data_unknown_at_preview_defers_to_the_sdk() -> None:
    # The SDK turns UnknownValueError into "can't run policy ... during preview".
    args = resource_args(ep.DROPLET, droplet_props(user_data_text=UNKNOWN_STRING_VALUE))
    with pytest.raises(UnknownValueError):
        ep.validate_mutual_tls(args, Violations())


def test_droplets_that_are_not_etcd_members_are_not_checked_for_mutual_tls() -> None:
    violations = Violations()
    props = droplet_props(tags=["web"], user_data_text="#cloud-config\n")
    ep.validate_mutual_tls(resource_args(ep.DROPLET, props), violations)
    assert violations == []


# --- etcd-certificate-minimum-validity ------------------------------------------------------------

@pytest.mark.parametrize("resource_type", [ep.SELF_SIGNED_CERT, ep.LOCALLY_SIGNED_CERT])
def test_a_certificate_valid_for_a_year_passes_the_default_minimum(resource_type: str) -> None:
    violations = Violations()
    args = resource_args(resource_type, {"validityPeriodHours": 8760}, name="etcd-1-server-cert")
    ep.validate_certificate_validity(args, violations)
    assert violations == []


@pytest.mark.parametrize("resource_type", [ep.SELF_SIGNED_CERT, ep.LOCALLY_SIGNED_CERT])
def test_a_certificate_shorter_than_the_default_90_days_is_a_violation(resource_type: str) -> None:
    violations = Violations()
    args = resource_args(resource_type, {"validityPeriodHours": 24 * 89}, name="client-ca-cert")
    ep.validate_certificate_validity(args, violations)
    (message,) = violations
    assert message.startswith("certificate client-ca-cert is valid for 2136 hours (89 days), "
                              "less than minimumCertValidityDays = 90 days")


def test_the_minimum_validity_comes_from_the_policy_config() -> None:
    violations = Violations()
    config = {"minimumCertValidityDays": 400}
    args = resource_args(ep.LOCALLY_SIGNED_CERT, {"validityPeriodHours": 8760}, config=config)
    ep.validate_certificate_validity(args, violations)
    assert "less than minimumCertValidityDays = 400 days" in violations[0]
    relaxed = resource_args(ep.LOCALLY_SIGNED_CERT, {"validityPeriodHours": 48},
                            config={"minimumCertValidityDays": 2})
    relaxed_violations = Violations()
    ep.validate_certificate_validity(relaxed, relaxed_violations)
    assert relaxed_violations == []


@pytest.mark.parametrize("bad", ["ninety", -1, True])
def test_a_minimum_validity_that_is_not_a_number_of_days_is_refused(bad: Any) -> None:
    args = resource_args(ep.SELF_SIGNED_CERT, {"validityPeriodHours": 8760},
                         config={"minimumCertValidityDays": bad})
    with pytest.raises(ValueError, match="minimumCertValidityDays must be a number of days"):
        ep.validate_certificate_validity(args, Violations())


def test_other_resources_are_not_certificates() -> None:
    violations = Violations()
    ep.validate_certificate_validity(resource_args(ep.DROPLET, droplet_props()), violations)
    assert violations == []


# --- the pack -----------------------------------------------------------------------------------------

def test_every_policy_has_a_unique_name_and_an_enforcement_level() -> None:
    names = [policy.name for policy in ep.POLICIES]
    assert len(names) == len(set(names)) == 7
    assert all(policy.enforcement_level is not None for policy in ep.POLICIES)
