"""The example consumer (examples/kubeadm-consumer) renders kubeadm's and kube-apiserver's etcd
settings from this stack's outputs.

The consumer runs under Pulumi mocks whose StackReference answers with the outputs THIS program
exports (its own mocked run), secrets wrapped and named as the engine does, so the test breaks if
either side changes what the other relies on. The render module is tested on its own too.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import logging
import runpy
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pulumi
import pytest
import yaml
from kubeflags import (
    kube_apiserver_flags,  # noqa: F401  (a fixture, found by name)
    resolve,
)
from program import ProgramRun
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import configure, get_root_resource
from pulumi.runtime.stack import run_in_stack

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kubeadm-consumer"
PROJECT = "kubeadm-consumer"
ETCD_STACK = "acme/etcd-cluster/dev"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
CA_FILE = "/etc/kubernetes/pki/etcd/ca.crt"
CERT_FILE = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
KEY_FILE = "/etc/kubernetes/pki/apiserver-etcd-client.key"

_mock_settings = cast(Callable[..., pulumi_mocks.MockSettings], pulumi_mocks.MockSettings)


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubeadm_render", EXAMPLE / "kubeadm_render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered under its own name: the consumer's `import kubeadm_render` finds this module.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = load_render()


# --- running the consumer under mocks -------------------------------------------------------

class EtcdStackMocks(pulumi_mocks.Mocks):
    """Answers the consumer's StackReference with an etcd-cluster stack's outputs."""

    def __init__(self, outputs: dict[str, Any], secret_names: set[str]) -> None:
        self.outputs = outputs
        self.secret_names = secret_names
        self.references: list[str] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.typ != STACK_REFERENCE:
            raise NotImplementedError(f"the consumer created a {args.typ}; it should only read")
        assert args.resource_id, "a stack reference is read by the stack's name (its id)"
        self.references.append(args.resource_id)
        # As the engine returns a stack reference: secret outputs wrapped, and named.
        outputs = {name: (rpc.wrap_rpc_secret(value) if name in self.secret_names else value)
                   for name, value in self.outputs.items()}
        return args.resource_id, {"name": args.resource_id, "outputs": outputs,
                                  "secretOutputNames": sorted(self.secret_names)}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the consumer called {args.token}")


@dataclass
class ConsumerRun:
    outputs: dict[str, Any] = field(default_factory=dict)
    secret: dict[str, bool] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


def run_consumer(stack_outputs: dict[str, Any], secret_names: set[str],
                 config: dict[str, str | None] | None = None) -> ConsumerRun:
    """Run examples/kubeadm-consumer/__main__.py once, in a thread and context of its own."""
    mocks = EtcdStackMocks(stack_outputs, secret_names)
    result = ConsumerRun(references=mocks.references)
    failure: list[BaseException] = []
    settings: dict[str, str | None] = {f"{PROJECT}:etcdStack": ETCD_STACK}
    settings.update({f"{PROJECT}:{key}": value for key, value in (config or {}).items()})

    def in_thread() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        monitor = pulumi_mocks.MockMonitor(mocks)
        try:
            configure(_mock_settings(
                monitor=monitor,
                monitor_features=set(cast(Any, monitor).GetDeploymentInfo(None).supportedFeatures),
                engine=pulumi_mocks.MockEngine(logging.getLogger("kubeadm-consumer")),
                project=PROJECT, stack="dev", dry_run=False, organization="acme", callbacks=None))
            set_all_config({key: value for key, value in settings.items() if value is not None})
            captured: dict[str, Any] = {}

            def main() -> None:
                captured["stack"] = get_root_resource()
                runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__")

            sys.path.insert(0, str(EXAMPLE))
            try:
                loop.run_until_complete(run_in_stack(main))
            finally:
                sys.path.remove(str(EXAMPLE))

            async def collect() -> None:
                for name, value in captured["stack"].outputs.items():
                    output = pulumi.Output.from_input(value)
                    result.outputs[name] = await output.future()
                    result.secret[name] = await output.is_secret()

            loop.run_until_complete(collect())
        except BaseException as error:
            failure.append(error)
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    thread = threading.Thread(target=lambda: contextvars.Context().run(in_thread))
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result


@pytest.fixture(scope="module")
def etcd_stack(program: Any) -> ProgramRun:
    """This program's own run: the outputs the consumer reads."""
    run: ProgramRun = program()
    return run


def stack_outputs(run: ProgramRun) -> tuple[dict[str, Any], set[str]]:
    return ({name: output.value for name, output in run.outputs.items()},
            {name for name, output in run.outputs.items() if output.secret_on_wire})


@pytest.fixture(scope="module")
def consumer(etcd_stack: ProgramRun) -> ConsumerRun:
    return run_consumer(*stack_outputs(etcd_stack))


# --- the consumer's outputs -----------------------------------------------------------------

def test_the_consumer_reads_the_etcd_stack_named_in_its_config(consumer: ConsumerRun) -> None:
    assert consumer.references == [ETCD_STACK]


def test_the_cluster_configuration_uses_the_stacks_external_etcd(consumer: ConsumerRun,
                                                                 etcd_stack: ProgramRun) -> None:
    document = yaml.safe_load(consumer.outputs["cluster_configuration"])
    assert document == {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "etcd": {"external": {
            "endpoints": etcd_stack.output("endpoints"),
            "caFile": CA_FILE,
            "certFile": CERT_FILE,
            "keyFile": KEY_FILE,
        }},
    }
    assert document["etcd"] == yaml.safe_load(etcd_stack.output("kubeadm_external_etcd"))["etcd"]


def test_kube_apiserver_gets_the_etcd_servers_and_the_client_files(consumer: ConsumerRun,
                                                                   etcd_stack: ProgramRun) -> None:
    assert consumer.outputs["kube_apiserver_etcd_flags"] == [
        f"--etcd-servers={etcd_stack.output('etcd_servers')}",
        f"--etcd-cafile={CA_FILE}",
        f"--etcd-certfile={CERT_FILE}",
        f"--etcd-keyfile={KEY_FILE}",
    ]


def test_the_pki_files_are_the_stacks_ca_client_cert_and_key_at_kubeadms_paths(
        consumer: ConsumerRun, etcd_stack: ProgramRun) -> None:
    assert consumer.outputs["etcd_pki_files"] == {
        CA_FILE: etcd_stack.output("ca_pem"),
        CERT_FILE: etcd_stack.output("apiserver_client_cert_pem"),
        KEY_FILE: etcd_stack.output("apiserver_client_key_pem"),
    }


def test_the_client_key_stays_secret_and_nothing_else_becomes_secret(consumer: ConsumerRun) -> None:
    assert consumer.secret == {"cluster_configuration": False, "kube_apiserver_etcd_flags": False,
                               "etcd_pki_files": True}


def test_the_etcd_stack_hands_the_consumer_only_key_material_as_secrets(
        etcd_stack: ProgramRun) -> None:
    _, secret_names = stack_outputs(etcd_stack)
    assert secret_names == {"apiserver_client_key_pem", "etcdctl_env"}


def test_kubernetes_version_and_control_plane_endpoint_are_rendered_when_set(
        etcd_stack: ProgramRun) -> None:
    run = run_consumer(*stack_outputs(etcd_stack), config={
        "kubernetesVersion": "v1.33.1", "controlPlaneEndpoint": "k8s-api.example.com:6443"})
    document = yaml.safe_load(run.outputs["cluster_configuration"])
    assert list(document)[:4] == ["apiVersion", "kind", "kubernetesVersion", "controlPlaneEndpoint"]
    assert document["kubernetesVersion"] == "v1.33.1"
    assert document["controlPlaneEndpoint"] == "k8s-api.example.com:6443"


def test_without_the_etcd_stack_setting_the_consumer_stops_naming_it(etcd_stack: ProgramRun) -> None:
    with pytest.raises(pulumi.ConfigMissingError, match=f"{PROJECT}:etcdStack"):
        run_consumer(*stack_outputs(etcd_stack), config={"etcdStack": None})


def test_the_example_project_declares_the_settings_it_reads() -> None:
    project = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert project["runtime"]["name"] == "python"
    assert set(project["config"]) == {"etcdStack", "kubernetesVersion", "controlPlaneEndpoint"}
    assert "default" not in project["config"]["etcdStack"]  # required


# --- the render module on its own -----------------------------------------------------------

ENDPOINTS = ["https://etcd-1.main.example.com:2379", "https://etcd-2.main.example.com:2379",
             "https://etcd-3.main.example.com:2379"]


def section(endpoints: list[str] | None = None, **changes: Any) -> str:
    external = {"endpoints": ENDPOINTS if endpoints is None else endpoints, "caFile": CA_FILE,
                "certFile": CERT_FILE, "keyFile": KEY_FILE, **changes}
    return yaml.safe_dump({"etcd": {"external": external}})


def test_the_external_section_must_list_the_stacks_endpoints() -> None:
    with pytest.raises(ValueError, match="the stack's outputs disagree"):
        render.external_etcd(section(ENDPOINTS[:2]), ENDPOINTS)


def test_etcd_endpoints_must_use_https() -> None:
    plain = [url.replace("https", "http") for url in ENDPOINTS]
    with pytest.raises(ValueError, match="must use https"):
        render.external_etcd(section(plain), plain)


@pytest.mark.parametrize("document", ["", "etcd: {}\n", "etcd:\n  local: {}\n", "[1, 2]\n"])
def test_an_output_without_an_external_etcd_section_is_refused(document: str) -> None:
    with pytest.raises(ValueError, match=r"no etcd\.external section"):
        render.external_etcd(document, ENDPOINTS)


def test_client_file_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match=r"etcd\.external\.keyFile must be an absolute path"):
        render.external_etcd(section(keyFile="apiserver-etcd-client.key"), ENDPOINTS)


def test_etcd_servers_must_be_the_comma_list_of_the_endpoints() -> None:
    external = render.external_etcd(section(), ENDPOINTS)
    with pytest.raises(ValueError, match="is not the comma list"):
        render.kube_apiserver_etcd_flags(external, ",".join(reversed(ENDPOINTS)))


def test_values_that_need_quoting_survive_the_yaml_serializer() -> None:
    external = render.external_etcd(section(caFile="/etc/k8s: pki/#ca.crt"), ENDPOINTS)
    text = render.cluster_configuration(external, kubernetes_version="v1.33.1")
    assert yaml.safe_load(text)["etcd"]["external"]["caFile"] == "/etc/k8s: pki/#ca.crt"


def test_pki_files_refuse_values_that_are_not_the_expected_pem() -> None:
    external = render.external_etcd(section(), ENDPOINTS)
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"
    assert render.pki_files(external, cert, cert, key)[KEY_FILE] == key
    with pytest.raises(ValueError, match="apiserver_client_key_pem is not a PEM PRIVATE KEY"):
        render.pki_files(external, cert, cert, cert)


# --- an etcd stack with an events cluster ----------------------------------------------------

@pytest.fixture(scope="module")
def events_stack(program: Any) -> ProgramRun:
    run: ProgramRun = program({"eventsCluster": True})
    return run


@pytest.fixture(scope="module")
def events_consumer(events_stack: ProgramRun) -> ConsumerRun:
    return run_consumer(*stack_outputs(events_stack))


def test_with_an_events_cluster_kubeadm_gets_the_override_as_an_api_server_extra_arg(
        events_consumer: ConsumerRun, events_stack: ProgramRun) -> None:
    document = yaml.safe_load(events_consumer.outputs["cluster_configuration"])
    assert document["apiServer"] == {"extraArgs": [
        {"name": "etcd-servers-overrides", "value": events_stack.output("etcd_servers_overrides")}]}
    assert document["etcd"]["external"]["endpoints"] == events_stack.output("endpoints")


@pytest.mark.usefixtures("kube_apiserver_flags")
def test_kube_apiserver_accepts_the_consumers_flags_and_sends_events_to_the_events_cluster(
        events_consumer: ConsumerRun, events_stack: ProgramRun) -> None:
    flags = events_consumer.outputs["kube_apiserver_etcd_flags"]
    assert flags[-1] == f"--etcd-servers-overrides={events_stack.output('etcd_servers_overrides')}"
    resolved = resolve(flags, ["/pods", "/secrets"])
    assert resolved.overrides == {"/events": events_stack.output("events_endpoints")}
    assert resolved.servers == events_stack.output("endpoints")
    assert resolved.resources == {"/pods": events_stack.output("endpoints"),
                                  "/secrets": events_stack.output("endpoints")}


def test_an_override_the_snippet_does_not_carry_is_refused() -> None:
    render = load_render()
    snippet = yaml.safe_dump({"etcd": {"external": {
        "endpoints": ["https://a:2379"], "caFile": "/ca", "certFile": "/c", "keyFile": "/k"}}})
    with pytest.raises(ValueError, match="the stack's outputs disagree"):
        render.external_etcd(snippet, ["https://a:2379"], "/events#https://e:2379")
