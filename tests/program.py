"""Run this Pulumi program under Pulumi mocks and record what it asks the engine for.

`run_program(config, stack)` runs `__main__.py` the way the Python language host does
(`run_in_stack` around `runpy.run_path`), against a mock resource monitor that

- records every RegisterResource request: type, name, parent, dependencies (explicit and
  property ones), ignoreChanges, protect, additionalSecretOutputs, and the inputs with the set of
  inputs that travelled as secrets;
- answers pulumi-tls resources with real keys and certificates (`tests/tls_mock.py`) and gives
  DigitalOcean and Cloudflare resources plausible ids and addresses (each droplet its own public
  and private IPv4);
- does what the engine does with `additionalSecretOutputs` (those outputs come back secret), and
  echoes inputs into outputs with their secretness, as the engine's state does;
- records the stack's registered outputs as the engine receives them.

Each run happens in its own thread with a fresh `contextvars.Context` and its own event loop, so
the Pulumi runtime's per-run state (settings, config, root stack resource, pending outputs) never
leaks from one run into the next, and any number of runs fit in one pytest session. An exception
anywhere in the program, including inside an `.apply` callback or a mock, makes `run_program`
raise `ProgramError` (the original exception is its `__cause__`; the requests recorded up to the
failure are on it), so a test can never pass over a swallowed error.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import json
import logging
import runpy
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
import yaml
from cryptography import x509
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import configure, get_root_resource
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await
from tls_mock import (
    CERT_REQUEST,
    LOCALLY_SIGNED_CERT,
    PRIVATE_KEY,
    SELF_SIGNED_CERT,
    TlsMock,
    unwrap_secrets,
)

from components.recorded import READ_STACK_OUTPUTS

__all__ = [
    "CERT_REQUEST", "CLUSTER", "COMMAND", "DNS_RECORD", "DROPLET", "FIREWALL", "LOCALLY_SIGNED_CERT",
    "PRIVATE_KEY",
    "SELF_SIGNED_CERT", "SPACES_BUCKET", "SPACES_KEY", "STACK", "TAG", "VOLUME",
    "VOLUME_ATTACHMENT", "VPC", "ProgramError", "ProgramRun", "Registration", "Secret",
    "StackOutput", "run_component_program", "run_main_program", "run_program",
]

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
PROJECT = "etcd-cluster"
ORGANIZATION = "organization"
DEFAULT_STACK = "dev"

STACK = "pulumi:pulumi:Stack"
DROPLET = "digitalocean:index/droplet:Droplet"
VOLUME = "digitalocean:index/volume:Volume"
VOLUME_ATTACHMENT = "digitalocean:index/volumeAttachment:VolumeAttachment"
FIREWALL = "digitalocean:index/firewall:Firewall"
TAG = "digitalocean:index/tag:Tag"
VPC = "digitalocean:index/vpc:Vpc"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
COMMAND = "command:local:Command"
CLUSTER = "etcd-cluster:index:EtcdCluster"
SPACES_BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
SPACES_KEY = "digitalocean:index/spacesKey:SpacesKey"

# A complete, valid configuration: what every run starts from unless `base=False`. The checksum
# is set because the program refuses a release whose checksum it does not know.
BASE_CONFIG: dict[str, Any] = {
    "clusterName": "main",
    "dnsZone": "example.com",
    "cloudflareZoneId": "0123456789abcdef0123456789abcdef",
    "etcdSha256": hashlib.sha256(b"etcd release tarball stand-in for tests").hexdigest(),
}

# Addresses the mock gives droplets: member n (in registration order) gets host 10 + n.
PRIVATE_NETWORK = ipaddress.ip_network("10.110.16.0/24")
PUBLIC_NETWORK = ipaddress.ip_network("203.0.113.0/24")

# The SDK's helpers are unannotated; typed handles keep strict mypy quiet either way.
_ensure_loop = cast(Callable[[], object], _ensure_event_loop)
_mock_settings = cast(Callable[..., pulumi_mocks.MockSettings], pulumi_mocks.MockSettings)

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class ProgramError(Exception):
    """The program failed; `__cause__` is what it raised, `run` has what was recorded."""

    def __init__(self, run: ProgramRun, error: BaseException) -> None:
        self.run = run
        self.error = error
        super().__init__(f"the program failed: {type(error).__name__}: {error}")

    @property
    def registrations(self) -> list[Registration]:
        return self.run.registrations


@dataclass
class Registration:
    """One RegisterResource request, and the mock's answer."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    protect: bool
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    ignore_changes: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    # The URNs this resource answers to besides its own (its `aliases`, resolved as the engine
    # resolves them): what keeps a renamed resource from being replaced.
    alias_urns: tuple[str, ...]
    # Inputs as plain values (secrets unwrapped, whole numbers as int).
    inputs: dict[str, Any]
    # Names of the inputs that were sent as (or containing) secrets.
    secret_inputs: frozenset[str]
    # The name within its component: the component's name and `-` dropped (every resource is
    # named `f"{component}-{what}"`), so tests say `etcd-1-server-cert`, not `main-pki-etc...`.
    short_name: str = ""
    # The `replacement_trigger` option (a change of it replaces the resource), as a plain value.
    replacement_trigger: Any = None
    delete_before_replace: bool = False
    # The `retain_on_delete` option: `pulumi destroy` leaves the cloud resource in place.
    retain_on_delete: bool = False
    id: str | None = None
    outputs: dict[str, Any] | None = None

    @property
    def all_dependencies(self) -> set[str]:
        """Every URN this resource waits for: explicit `depends_on` and property dependencies."""
        found = set(self.dependencies)
        for urns in self.property_dependencies.values():
            found.update(urns)
        return found


@dataclass(frozen=True)
class StackOutput:
    value: Any
    # Output.is_secret() of the exported value (secret anywhere inside it).
    secret: bool
    # Whether the value reached the engine wrapped as a secret (what StackReference consumers see).
    secret_on_wire: bool


@dataclass
class ProgramRun:
    project: str
    stack: str
    config: dict[str, str]
    # The config keys stored as secrets.
    secret_keys: list[str] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, StackOutput] = field(default_factory=dict)
    program_globals: dict[str, Any] = field(default_factory=dict)

    # --- lookups ----------------------------------------------------------------------------
    # By short name (the name within the component): unique while the program builds one
    # cluster; with two, narrow the run to one of them first (`run.cluster("main-events")`).

    def cluster(self, name: str) -> ProgramRun:
        """The same run, narrowed to the resources under the EtcdCluster `name`."""
        (root,) = [reg for reg in self.registrations
                   if reg.type == CLUSTER and reg.name == name]
        under = [reg for reg in self.registrations
                 if reg is root or any(parent is root for parent in self.ancestors(reg))]
        return ProgramRun(project=self.project, stack=self.stack, config=self.config,
                          secret_keys=self.secret_keys, registrations=under, outputs=self.outputs,
                          program_globals=self.program_globals)

    def _by_short_name(self, registrations: list[Registration]) -> dict[str, Registration]:
        found: dict[str, Registration] = {}
        for reg in registrations:
            if reg.short_name in found:
                raise KeyError(f"two {reg.type} are named {reg.short_name!r} in their components "
                               f"({found[reg.short_name].name}, {reg.name}): narrow the run to "
                               "one cluster with run.cluster(name)")
            found[reg.short_name] = reg
        return found

    @property
    def resources(self) -> dict[tuple[str, str], Registration]:
        """Registrations by (type, short name) (the Stack included)."""
        return {(reg.type, reg.short_name): reg for reg in self.registrations}

    @property
    def by_urn(self) -> dict[str, Registration]:
        return {reg.urn: reg for reg in self.registrations}

    def of_type(self, resource_type: str) -> list[Registration]:
        return [reg for reg in self.registrations if reg.type == resource_type]

    def named(self, resource_type: str) -> dict[str, Registration]:
        return self._by_short_name(self.of_type(resource_type))

    def get(self, resource_type: str, name: str) -> Registration:
        try:
            return self.named(resource_type)[name]
        except KeyError:
            known = sorted(reg.short_name for reg in self.of_type(resource_type))
            raise KeyError(f"no {resource_type} named {name!r}; registered: {known}") from None

    @property
    def stack_resource(self) -> Registration:
        (stack,) = self.of_type(STACK)
        return stack

    @property
    def custom_resources(self) -> list[Registration]:
        return [reg for reg in self.registrations if reg.custom]

    @property
    def user_data(self) -> dict[str, str]:
        """Per member (machine short name): the user-data its droplet or VM was given."""
        return {
            **{name: reg.inputs["userData"] for name, reg in self.named(DROPLET).items()},
            # Local VMs get it on the create script's standard input.
            **{name: reg.inputs["stdin"] for name, reg in self.named(COMMAND).items()},
        }

    def output(self, name: str) -> Any:
        return self.outputs[name].value

    @property
    def certificates(self) -> dict[str, x509.Certificate]:
        """Every certificate the PKI issued (self-signed and locally signed), by resource name."""
        found: dict[str, x509.Certificate] = {}
        for name, reg in {**self.named(SELF_SIGNED_CERT), **self.named(LOCALLY_SIGNED_CERT)}.items():
            assert reg.outputs is not None, f"{reg.name} has no outputs"
            found[name] = x509.load_pem_x509_certificate(reg.outputs["certPem"].encode())
        return found

    @property
    def private_key_pems(self) -> dict[str, str]:
        """Every private key PEM the tls provider returned, by PrivateKey resource name."""
        found: dict[str, str] = {}
        for name, reg in self.named(PRIVATE_KEY).items():
            assert reg.outputs is not None, f"{reg.name} has no outputs"
            found[name] = reg.outputs["privateKeyPem"]
        return found

    def ancestors(self, registration: Registration) -> Iterator[Registration]:
        by_urn = self.by_urn
        parent = by_urn.get(registration.parent)
        while parent is not None:
            yield parent
            parent = by_urn.get(parent.parent)

    def creation_depth(self) -> int:
        """Longest chain of creations that must happen one after another.

        Nodes are custom resources (components are bookkeeping, not creations); an edge is a
        recorded dependency, explicit or through a property. A dependency on a component counts
        as one on every custom resource under it (the SDK already expands these, this is for
        safety).
        """
        by_urn = self.by_urn
        children: dict[str, list[str]] = {}
        for reg in self.registrations:
            children.setdefault(reg.parent, []).append(reg.urn)

        def custom_under(urn: str) -> set[str]:
            reg = by_urn.get(urn)
            if reg is None:
                return set()
            if reg.custom:
                return {urn}
            found: set[str] = set()
            for child in children.get(urn, []):
                found |= custom_under(child)
            return found

        waits_for: dict[str, set[str]] = {}
        for reg in self.custom_resources:
            deps: set[str] = set()
            for urn in reg.all_dependencies:
                deps |= custom_under(urn)
            deps.discard(reg.urn)
            waits_for[reg.urn] = deps

        depth: dict[str, int] = {}

        def depth_of(urn: str, path: tuple[str, ...] = ()) -> int:
            if urn in path:
                raise ValueError(f"dependency cycle: {' -> '.join((*path, urn))}")
            if urn not in depth:
                depth[urn] = 1 + max((depth_of(dep, (*path, urn)) for dep in waits_for[urn]),
                                     default=0)
            return depth[urn]

        return max((depth_of(urn) for urn in waits_for), default=0)


# --- config ---------------------------------------------------------------------------------

class Secret(str):
    """A configuration value stored as a secret (`pulumi config set --secret`)."""

    def __repr__(self) -> str:
        # Distinct from the plain value's: conftest's cache of runs keys on it.
        return f"Secret({str.__repr__(self)})"


def secret_config_keys(config: Mapping[str, Any] | None) -> list[str]:
    """The namespaced keys of `config` whose values are `Secret`s."""
    return [key if ":" in key else f"{PROJECT}:{key}" for key, value in (config or {}).items()
            if isinstance(value, Secret)]


def config_value(value: Any) -> str:
    """What the Pulumi CLI hands the program: strings (true/false, numbers as written),
    structured values as JSON."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def project_defaults() -> dict[str, Any]:
    """What the engine adds to every stack's configuration: each setting's default from
    Pulumi.yaml, for the settings the stack does not set (pkg/workspace/config.go)."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    return {key: entry["default"] for key, entry in declared.items() if "default" in entry}


def stack_config(config: Mapping[str, Any] | None, base: bool = True) -> dict[str, str]:
    """`etcd-cluster:*` config as the program receives it: Pulumi.yaml's defaults, then the
    base configuration, then `config`; keys may be bare (`memberCount`) or namespaced. None
    removes (the default stays: the engine always adds it)."""
    merged: dict[str, Any] = {f"{PROJECT}:{key}": value for key, value in project_defaults().items()}
    defaults = dict(merged)
    for source in ((BASE_CONFIG if base else {}), config or {}):
        for key, value in source.items():
            full = key if ":" in key else f"{PROJECT}:{key}"
            if value is None:
                merged.pop(full, None)
                if full in defaults:
                    merged[full] = defaults[full]
            else:
                merged[full] = value
    return {key: config_value(value) for key, value in merged.items()}


# --- the mocks ------------------------------------------------------------------------------

def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain_number(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_number(item) for item in value]
    return value


def contains_secret(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return True
        return any(contains_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_secret(item) for item in value)
    return False


class ProgramMocks(pulumi_mocks.Mocks):
    """Resource outputs for this program's providers; tls resources are made for real."""

    def __init__(self, tls: TlsMock | None = None,
                 recorded_outputs: Mapping[str, Any] | None = None) -> None:
        self.tls = tls or TlsMock()
        # The stack's outputs as its last update left them (none: a new stack).
        self.recorded_outputs = dict(recorded_outputs or {})
        self._lock = threading.Lock()
        self._droplets: dict[str, int] = {}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == READ_STACK_OUTPUTS:
            return {"name": args.args["name"], "outputs": self.recorded_outputs,
                    "secretOutputNames": []}, []
        raise NotImplementedError(f"the program called {args.token}, which these mocks do not know")

    def _droplet_number(self, name: str) -> int:
        with self._lock:
            return self._droplets.setdefault(name, len(self._droplets) + 1)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs = dict(args.inputs)
        if not args.custom:
            return "", {}
        if self.tls.handles(args.typ):
            return self.tls.new_resource(args.typ, args.name, inputs)
        stable = uuid.uuid5(uuid.NAMESPACE_URL, f"{args.typ}/{args.name}")
        if args.typ == DROPLET:
            number = self._droplet_number(args.name)
            droplet_id = str(400_000_000 + number)
            return droplet_id, {
                **inputs,
                "ipv4Address": str(PUBLIC_NETWORK[10 + number]),
                "ipv4AddressPrivate": str(PRIVATE_NETWORK[10 + number]),
                "status": "active",
                "urn": f"do:droplet:{droplet_id}",
            }
        if args.typ == VOLUME:
            return str(stable), {**inputs, "urn": f"do:volume:{stable}"}
        if args.typ == VPC:
            return str(stable), {**inputs, "ipRange": inputs.get("ipRange") or str(PRIVATE_NETWORK),
                                 "urn": f"do:vpc:{stable}"}
        if args.typ == TAG:
            name = unwrap_secrets(inputs.get("name"))
            return str(name), inputs
        if args.typ == DNS_RECORD:
            return stable.hex, inputs
        if args.typ == COMMAND:
            # What a create script prints: progress, never the user-data it was given.
            return str(stable), {**inputs, "stdout": "", "stderr": "created\n"}
        if args.typ == SPACES_KEY:
            # The provider marks secretKey secret itself (additionalSecretOutputs).
            return str(stable), {**inputs, "accessKey": f"DO00{stable.hex[:16].upper()}",
                                 "secretKey": f"spaces-secret-{stable.hex}"}
        return str(stable), inputs


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that records requests and treats additionalSecretOutputs as the engine does."""

    def __init__(self, mocks: ProgramMocks, stack: str) -> None:
        super().__init__(mocks)
        self._stack = stack
        self.registrations: list[Registration] = []
        self.registered_outputs: dict[str, Any] = {}
        self._record_lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine does (sdk/go/common/resource/urn.New): a child's type is its parent's
        # whole type chain, `$`, its own type; children of the stack have their type alone.
        # (MockMonitor keeps only the parent's last type and prefixes the stack's.)
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK:
                type_ = f"{parent_type}${type_}"
        return "urn:pulumi:" + "::".join([self._stack, PROJECT, type_, name])

    def _alias_urns(self, request: Any) -> tuple[str, ...]:
        found = []
        for alias in request.aliases:
            if alias.urn:
                found.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            found.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        return tuple(found)

    def _short_name(self, parent: str, name: str) -> str:
        parent_name = parent.split("::")[-1] if parent else ""
        if parent and parent.split("::")[2] != STACK and name.startswith(f"{parent_name}-"):
            return name.removeprefix(f"{parent_name}-")
        return name

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        _ensure_loop()
        raw = rpc.deserialize_properties(request.object) if request.type != STACK else {}
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent,
            custom=bool(request.custom),
            protect=bool(request.protect),
            dependencies=tuple(request.dependencies),
            property_dependencies={key: tuple(deps.urns)
                                   for key, deps in request.propertyDependencies.items()},
            ignore_changes=tuple(request.ignoreChanges),
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
            alias_urns=self._alias_urns(request),
            short_name=self._short_name(request.parent, request.name),
            inputs=_plain_number(unwrap_secrets(raw)),
            secret_inputs=frozenset(key for key, value in raw.items() if contains_secret(value)),
            replacement_trigger=_plain_number(json_format.MessageToDict(
                request.replacement_trigger)) if request.HasField("replacement_trigger") else None,
            delete_before_replace=bool(request.deleteBeforeReplace),
            retain_on_delete=bool(request.retainOnDelete),
        )
        with self._record_lock:
            self.registrations.append(registration)
        if request.type == STACK:
            return resource_pb2.RegisterResourceResponse(urn=urn)

        args = pulumi_mocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=raw, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False)
        resource_id, state = self.mocks.new_resource(args)
        # The engine marks these outputs secret whatever the provider returns.
        state = {key: (rpc.wrap_rpc_secret(value) if key in request.additionalSecretOutputs
                       else value) for key, value in state.items()}
        registration.id = resource_id
        registration.outputs = _plain_number(unwrap_secrets(state))
        obj = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id or "",
                                                                             state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id or "", object=obj)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        _ensure_loop()
        with self._record_lock:
            self.registered_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return cast(Any, pulumi_mocks.MockMonitor).RegisterResourceOutputs(self, request)


# --- running --------------------------------------------------------------------------------

def run_main_program() -> dict[str, Any]:
    """The program as `pulumi up` runs it: `__main__.py` executed as the main module."""
    return runpy.run_path(str(PROGRAM), run_name="__main__")


def run_component_program() -> dict[str, Any]:
    """Build the stack's clusters directly from its settings, exporting their outputs."""
    from components.config import stack_settings
    from components.stack import build_clusters, stack_outputs

    settings = stack_settings()
    cluster, events = build_clusters(settings)
    for name, value in stack_outputs(cluster, events).items():
        pulumi.export(name, value)
    return {"settings": settings, "cluster": cluster, "events": events}


def _run_in_this_thread(run: ProgramRun, program: Callable[[], dict[str, Any]],
                        tls: TlsMock | None, recorded_outputs: Mapping[str, Any] | None) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = RecordingMonitor(ProgramMocks(tls, recorded_outputs), run.stack)
    run.registrations = monitor.registrations
    try:
        configure(_mock_settings(
            monitor=monitor,
            monitor_features=set(cast(Any, monitor).GetDeploymentInfo(None).supportedFeatures),
            engine=pulumi_mocks.MockEngine(logging.getLogger("pulumi-program")),
            project=PROJECT,
            stack=run.stack,
            dry_run=False,
            organization=ORGANIZATION,
            callbacks=None,
        ))
        set_all_config(dict(run.config), run.secret_keys)
        captured: dict[str, Any] = {}

        def main() -> None:
            # Inside the stack's task: the root resource is visible from here only.
            captured["stack"] = get_root_resource()
            captured["globals"] = program()

        loop.run_until_complete(run_in_stack(main))
        run.program_globals = captured.get("globals") or {}
        stack = captured["stack"]
        wire = monitor.registered_outputs.get(run.stack_resource.urn, {})

        async def collect() -> dict[str, StackOutput]:
            found: dict[str, StackOutput] = {}
            for name, value in stack.outputs.items():
                output = pulumi.Output.from_input(value)
                found[name] = StackOutput(
                    value=_plain_number(await output.future()),
                    secret=await output.is_secret(),
                    secret_on_wire=contains_secret(wire.get(name)),
                )
            return found

        run.outputs = loop.run_until_complete(collect())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


def run_program(config: Mapping[str, Any] | None = None, stack: str = DEFAULT_STACK, *,
                base: bool = True, tls: TlsMock | None = None,
                program: Callable[[], dict[str, Any]] = run_main_program,
                recorded_outputs: Mapping[str, Any] | None = None) -> ProgramRun:
    """Run the program once under mocks; raise ProgramError if anything in it fails.
    `recorded_outputs`: the stack's outputs as its last update left them (default: a new
    stack)."""
    run = ProgramRun(project=PROJECT, stack=stack, config=stack_config(config, base),
                     secret_keys=secret_config_keys(config))
    failure: list[BaseException] = []

    def target() -> None:
        try:
            contextvars.Context().run(_run_in_this_thread, run, program, tls,
                                      recorded_outputs)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, name=f"pulumi-program-{stack}")
    thread.start()
    thread.join()
    if failure:
        raise ProgramError(run, failure[0]) from failure[0]
    return run
