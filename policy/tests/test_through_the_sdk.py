"""The policies run through the SDK's own request handling, on the real program's resources.

`_PolicyAnalyzerServicer` is what a PolicyPack serves to the engine; constructing it directly
(without PolicyPack, so no gRPC server starts) runs the SDK's deserialization exactly as
`pulumi preview --policy-pack policy` does: secrets unwrapped for validations and kept for
remediations, unknowns raising, options from `AnalyzerResourceOptions`, policy config. The
resources are the real program's, recorded under mocks by tests/test_policy.py.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Iterator
from typing import Any

import etcd_policies as ep
import pytest
import yaml
from conftest import POLICY_DIR
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PACK = "etcd-cluster-guard-rails"


def servicer(config: dict[str, dict[str, Any]] | None = None) -> Any:
    """The SDK's analyzer (its gRPC methods are untyped, hence Any)."""
    analyzer: Any = _PolicyAnalyzerServicer(PACK, "0.1.0", ep.POLICIES, EnforcementLevel.ADVISORY)
    if config:
        request = proto.ConfigureAnalyzerRequest()
        for name, properties in config.items():
            policy = next(policy for policy in ep.POLICIES if policy.name == name)
            request.policyConfig[name].enforcementLevel = analyzer._map_enforcement_level(
                policy.enforcement_level or EnforcementLevel.ADVISORY)
            request.policyConfig[name].properties.update(properties)
        analyzer.Configure(request, None)
    return analyzer


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    json_format.ParseDict(values, result)
    return result


def wire_inputs(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource's inputs as the engine marshals them: secret inputs wrapped as secrets."""
    return {key: ({SIG_KEY: SECRET_SIG, "value": value} if key in resource["secretInputs"]
                  else value)
            for key, value in resource["inputs"].items()}


def resource_options(resource: dict[str, Any]) -> Any:
    return proto.AnalyzerResourceOptions(
        protect=resource["protect"], ignoreChanges=resource["ignoreChanges"],
        additionalSecretOutputs=resource["additionalSecretOutputs"], parent=resource["parent"])


def analyze_request(resource: dict[str, Any]) -> Any:
    return proto.AnalyzeRequest(
        type=resource["type"], name=resource["name"], urn=resource["urn"],
        properties=struct(wire_inputs(resource)), options=resource_options(resource))


def analyze_stack_request(resources: list[dict[str, Any]]) -> Any:
    return proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(
            type=resource["type"], name=resource["name"], urn=resource["urn"],
            properties=struct(resource["outputs"] or {}), options=resource_options(resource),
            parent=resource["parent"], dependencies=resource["dependencies"])
        for resource in resources
    ])


def diagnostics(response: Any) -> list[tuple[str, str]]:
    return [(diagnostic.policyName, diagnostic.message) for diagnostic in response.diagnostics]


def custom(run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (resource for resource in run["resources"] if resource["custom"])


def of_type(run: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [resource for resource in run["resources"] if resource["type"] == resource_type]


@pytest.fixture
def run(program_run: dict[str, Any]) -> dict[str, Any]:
    """A copy of the recording each test may change."""
    return copy.deepcopy(program_run)


# --- the program as built ---------------------------------------------------------------------

def test_the_recording_has_the_programs_members_firewall_and_certificates(run: dict[str, Any]) -> None:
    assert len(of_type(run, ep.DROPLET)) == 3
    assert len(of_type(run, ep.FIREWALL)) == 1
    assert len(of_type(run, ep.SELF_SIGNED_CERT)) == 2
    assert len(of_type(run, ep.LOCALLY_SIGNED_CERT)) == 9


def test_the_program_as_built_passes_every_resource_policy(run: dict[str, Any]) -> None:
    analyzer = servicer()
    for resource in custom(run):
        response = analyzer.Analyze(analyze_request(resource), None)
        assert diagnostics(response) == [], resource["name"]


def test_the_program_as_built_passes_the_member_count(run: dict[str, Any]) -> None:
    response = servicer().AnalyzeStack(analyze_stack_request(run["resources"]), None)
    assert diagnostics(response) == []


def test_the_programs_user_data_is_already_secret_so_nothing_is_remediated(
        run: dict[str, Any]) -> None:
    analyzer = servicer()
    for resource in custom(run):
        response = analyzer.Remediate(analyze_request(resource), None)
        assert list(response.remediations) == [], resource["name"]


# --- the same resources, changed ----------------------------------------------------------------

def test_user_data_arriving_in_plain_text_is_remediated_into_a_secret(run: dict[str, Any]) -> None:
    droplet = of_type(run, ep.DROPLET)[0]
    droplet["secretInputs"].remove("userData")
    response = servicer().Remediate(analyze_request(droplet), None)
    (remediation,) = response.remediations
    assert remediation.policyName == "etcd-user-data-secret"
    fixed = json_format.MessageToDict(remediation.properties)
    assert fixed["userData"] == {SIG_KEY: SECRET_SIG, "value": droplet["inputs"]["userData"]}
    # Every other input comes back unchanged.
    assert {key: value for key, value in fixed.items() if key != "userData"} == \
        {key: value for key, value in json_format.MessageToDict(struct(wire_inputs(droplet))).items()
         if key != "userData"}


def test_a_droplet_rebuilt_on_user_data_changes_is_refused(run: dict[str, Any]) -> None:
    droplet = of_type(run, ep.DROPLET)[1]
    droplet["ignoreChanges"] = [prop for prop in droplet["ignoreChanges"] if prop != "userData"]
    response = servicer().Analyze(analyze_request(droplet), None)
    (found,) = diagnostics(response)
    assert found[0] == "etcd-droplet-ignores-rebuild-changes"
    assert "does not ignore changes to userData" in found[1]
    assert response.diagnostics[0].enforcementLevel == proto.MANDATORY


def test_unprotected_members_get_an_advisory(run: dict[str, Any]) -> None:
    volume = of_type(run, ep.VOLUME)[0]
    volume["protect"] = False
    response = servicer().Analyze(analyze_request(volume), None)
    assert [name for name, _ in diagnostics(response)] == ["etcd-members-protected"]
    assert response.diagnostics[0].enforcementLevel == proto.ADVISORY


def test_a_member_whose_unit_drops_client_cert_auth_is_refused(run: dict[str, Any]) -> None:
    droplet = of_type(run, ep.DROPLET)[0]
    text = droplet["inputs"]["userData"]
    assert " --client-cert-auth=true " in text
    droplet["inputs"]["userData"] = text.replace(" --client-cert-auth=true ", " --auto-tls=true ")
    found = diagnostics(servicer().Analyze(analyze_request(droplet), None))
    assert [name for name, _ in found] == ["etcd-mutual-tls", "etcd-mutual-tls"]
    assert "--client-cert-auth is not true" in found[0][1]
    assert "--auto-tls is on" in found[1][1]


def test_user_data_unknown_at_preview_gets_the_sdks_cannot_run_notice(run: dict[str, Any]) -> None:
    droplet = of_type(run, ep.DROPLET)[0]
    droplet["inputs"]["userData"] = UNKNOWN_STRING_VALUE
    response = servicer().Analyze(analyze_request(droplet), None)
    (diagnostic,) = response.diagnostics
    assert diagnostic.policyName == "etcd-mutual-tls"
    assert "can't run policy 'etcd-mutual-tls'" in diagnostic.message
    assert "during preview" in diagnostic.message
    assert diagnostic.enforcementLevel == proto.ADVISORY


def test_opening_the_client_port_to_the_internet_is_refused(run: dict[str, Any]) -> None:
    (firewall,) = of_type(run, ep.FIREWALL)
    rule = next(rule for rule in firewall["inputs"]["inboundRules"] if rule["portRange"] == "2379")
    rule["sourceAddresses"] = [*rule.get("sourceAddresses", []), "0.0.0.0/0"]
    (found,) = diagnostics(servicer().Analyze(analyze_request(firewall), None))
    assert found[0] == "etcd-firewall-closed-to-internet"
    assert "opens 2379 (client) to 0.0.0.0/0" in found[1]


def test_a_cluster_that_lost_a_member_fails_the_member_count(run: dict[str, Any]) -> None:
    last = of_type(run, ep.DROPLET)[-1]
    run["resources"].remove(last)
    (found,) = diagnostics(servicer().AnalyzeStack(analyze_stack_request(run["resources"]), None))
    assert found[0] == "etcd-member-count"
    assert "has 2 members" in found[1]


def test_certificates_shorter_than_the_configured_minimum_are_refused(run: dict[str, Any]) -> None:
    cert = of_type(run, ep.LOCALLY_SIGNED_CERT)[0]
    hours = cert["inputs"]["validityPeriodHours"]
    analyzer = servicer({"etcd-certificate-minimum-validity":
                         {"minimumCertValidityDays": hours // 24 + 1}})
    (found,) = diagnostics(analyzer.Analyze(analyze_request(cert), None))
    assert found[0] == "etcd-certificate-minimum-validity"
    assert f"less than minimumCertValidityDays = {hours // 24 + 1} days" in found[1]


# --- the pack's files --------------------------------------------------------------------------------

def test_the_pack_describes_every_policy_with_its_enforcement_level() -> None:
    info = servicer().GetAnalyzerInfo(None, None)
    levels = {policy.name: policy.enforcementLevel for policy in info.policies}
    assert levels == {
        "etcd-member-count": proto.MANDATORY,
        "etcd-droplet-ignores-rebuild-changes": proto.MANDATORY,
        "etcd-members-protected": proto.ADVISORY,
        "etcd-user-data-secret": proto.REMEDIATE,
        "etcd-firewall-closed-to-internet": proto.MANDATORY,
        "etcd-mutual-tls": proto.MANDATORY,
        "etcd-certificate-minimum-validity": proto.MANDATORY,
    }


def test_main_only_builds_the_policy_pack_from_the_policies_module() -> None:
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    (pack,) = [call for call in calls if getattr(call.func, "id", None) == "PolicyPack"]
    keywords = {keyword.arg: keyword.value for keyword in pack.keywords}
    assert isinstance(keywords["policies"], ast.Name) and keywords["policies"].id == "POLICIES"
    assert isinstance(keywords["name"], ast.Constant) and keywords["name"].value == PACK


def test_the_policy_project_file_runs_python_from_the_packs_own_venv() -> None:
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"] == {"name": "python", "options": {"virtualenv": ".venv"}}
    assert project["version"]


def test_the_policy_config_file_sets_only_declared_properties() -> None:
    config = json.loads((POLICY_DIR / "config.json").read_text())
    schemas = {policy.name: policy.config_schema for policy in ep.POLICIES}
    for name, values in config.items():
        schema = schemas[name]
        assert schema is not None, name
        assert set(values) <= set(schema.properties) | {"enforcementLevel"}, name
