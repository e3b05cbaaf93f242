"""The etcd cluster's guard rails as Pulumi policies (pulumi-policy), run by
`pulumi preview --policy-pack policy` and `pulumi up --policy-pack policy`.

This module only defines the policies and their validate/remediate functions; `__main__.py` builds
the PolicyPack (which starts a gRPC server and blocks, so tests never construct one: they call
these functions with hand-made arguments, and through the SDK's own request handling).

What the SDK (pulumi-policy 1.21.0, `policy.py`) gives a policy, and so what each rule can see:
- resource validation: `args.props` are the resource's *inputs* with secrets unwrapped (the SDK
  deserializes them without keeping secretness) and unknown values raising `UnknownValueError`
  when read; `args.opts` is a `PolicyResourceOptions` with `protect`, `ignore_changes`,
  `additional_secret_outputs`, `parent` (the engine sends them in `AnalyzerResourceOptions`);
- stack validation: every resource with its *outputs*, options, parent and dependencies;
- remediation: `args.props` keep secretness (the SDK deserializes with `proxy_secrets=True`: a
  secret is a `pulumi_policy.Secret` in `args.props["__target"]`), and a remediation may return
  new inputs, including `Secret(...)` values the engine then encrypts. So "user-data is a
  secret" is a remediation: it is the one place the SDK shows whether a value is secret.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

DROPLET = "digitalocean:index/droplet:Droplet"
VOLUME = "digitalocean:index/volume:Volume"
FIREWALL = "digitalocean:index/firewall:Firewall"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"

# Every etcd droplet and volume carries the common tag and its cluster's tag
# (`etcd:<stack>:<cluster>`, model/cluster_spec.py ClusterSpec.cluster_tag).
COMMON_TAG = "etcd"
CLUSTER_TAG = re.compile(r"^etcd:[^:]+:[^:]+$")
MEMBER_COUNTS = (1, 3, 5, 7)

CLIENT_PORT, PEER_PORT, METRICS_PORT = 2379, 2380, 2381
# Ports nobody on the internet may reach: mutual-TLS client and peer ports, and the metrics port
# (plain HTTP, serves /health and every metric unauthenticated).
CLOSED_PORTS = {CLIENT_PORT: "client", PEER_PORT: "peer", METRICS_PORT: "metrics (plain HTTP)"}

# Inputs DigitalOcean can only apply by rebuilding the droplet (what components/digitalocean.py
# REBUILD_PROPERTIES ignores), as the engine names them.
REBUILD_PROPERTIES = ("userData", "image", "sshKeys")

# The unit's one EnvironmentFile= (cloudinit/etcd_flags.py): the initial cluster, nothing else.
INITIAL_CLUSTER_FILE = "/etc/etcd/initial-cluster.env"
INITIAL_CLUSTER_VARIABLES = frozenset({"ETCD_INITIAL_CLUSTER", "ETCD_INITIAL_CLUSTER_STATE"})
ETCD_UNIT_PATH = "/etc/systemd/system/etcd.service"
# etcd flags parse booleans with Go's strconv.ParseBool.
GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

MIN_VALIDITY_KEY = "minimumCertValidityDays"
DEFAULT_MIN_CERT_VALIDITY_DAYS = 90


# --- reading properties -----------------------------------------------------------------------

def _get(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """props[key] or default; an unknown value (preview) raises UnknownValueError."""
    return props.get(key, default)  # Mapping.get reads props[key]: unknowns still raise


def _known_items(values: Sequence[Any] | None) -> Iterator[Any]:
    """The known elements of a list whose other elements may be unknown at preview."""
    for index in range(len(values or ())):
        try:
            yield values[index]  # type: ignore[index]
        except UnknownValueError:
            continue


def known_tags(props: Mapping[str, Any]) -> list[str]:
    try:
        tags = _get(props, "tags")
    except UnknownValueError:
        return []
    return [tag for tag in _known_items(tags) if isinstance(tag, str)]


def is_etcd_resource(props: Mapping[str, Any]) -> bool:
    return COMMON_TAG in known_tags(props)


def cluster_tag(props: Mapping[str, Any]) -> str | None:
    return next((tag for tag in known_tags(props) if CLUSTER_TAG.match(tag)), None)


# --- etcd-member-count --------------------------------------------------------------------------

def validate_member_count(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each cluster has 1, 3, 5 or 7 members.

    Members are droplets with the common tag, grouped by their cluster tag; when the cluster tag
    is not known (preview, before the tag exists), by the component that owns them.
    """
    clusters: dict[str, list[str]] = {}
    for resource in args.resources:
        if resource.resource_type != DROPLET or not is_etcd_resource(resource.props):
            continue
        key = cluster_tag(resource.props) or f"members of {resource.opts.parent or 'the stack'}"
        clusters.setdefault(key, []).append(resource.name)
    for cluster, members in sorted(clusters.items()):
        if len(members) not in MEMBER_COUNTS:
            report_violation(
                f"cluster {cluster} has {len(members)} members ({', '.join(sorted(members))}): "
                "etcd needs a majority to accept writes, so an even count adds no fault tolerance "
                "over the odd count below it and more than 7 slows every write. Use 3, 5 or 7 "
                "members (1 only for throwaway tests).", None)


# --- etcd-droplet-ignores-rebuild-changes ---------------------------------------------------------

def validate_ignores_rebuild_changes(args: ResourceValidationArgs,
                                     report_violation: ReportViolation) -> None:
    if args.resource_type != DROPLET or not is_etcd_resource(args.props):
        return
    ignored = set(args.opts.ignore_changes)
    if "*" in ignored:
        return
    missing = [prop for prop in REBUILD_PROPERTIES if prop not in ignored]
    if missing:
        report_violation(
            f"etcd droplet {args.name} does not ignore changes to {', '.join(missing)}: "
            "DigitalOcean applies them by rebuilding the droplet, and rebuilding several members "
            "at once loses quorum and data. Set ignore_changes on the droplet; roll such changes "
            "out one member at a time (README: Replacing one member).", None)


# --- etcd-members-protected -------------------------------------------------------------------------

def validate_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in (DROPLET, VOLUME) or not is_etcd_resource(args.props):
        return
    if not args.opts.protect:
        what = "droplet" if args.resource_type == DROPLET else "data volume"
        report_violation(
            f"etcd {what} {args.name} is not protected: a change that replaces or deletes it "
            "would go ahead instead of failing at preview. Keep protectMembers true outside "
            "throwaway stacks.", None)


# --- etcd-user-data-secret (remediation) --------------------------------------------------------------

def _raw_props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The SDK's property proxies keep the underlying values (Secret wrappers included) under
    "__target"; hand-made plain mappings are their own underlying values."""
    try:
        target = props["__target"]
    except (KeyError, UnknownValueError):
        return props
    return target if isinstance(target, Mapping) else props


def remediate_user_data_secret(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """An etcd droplet's user-data carries the member's private keys: if it arrives in plain
    text, return the inputs with it marked secret (the engine then encrypts it in the state)."""
    if args.resource_type != DROPLET or not is_etcd_resource(args.props):
        return None
    raw = _raw_props(args.props)
    user_data = raw.get("userData")
    if user_data is None or isinstance(user_data, Secret):
        return None
    fixed = dict(raw)
    fixed["userData"] = Secret(user_data)
    return fixed


# --- etcd-firewall-closed-to-internet -------------------------------------------------------------

def _port_range(value: Any) -> tuple[int, int] | None:
    """DigitalOcean's `port_range`: "2379", "2379-2380", "all" or empty (all ports)."""
    text = str(value or "").strip().lower()
    if text in ("", "all", "0"):
        return 1, 65535
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        return None


def _is_everywhere(address: Any) -> bool:
    try:
        return ipaddress.ip_network(str(address).strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def validate_firewall(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != FIREWALL:
        return
    try:
        rules = _get(args.props, "inboundRules") or []
    except UnknownValueError:
        args.not_applicable("the inbound rules are not known until the update")
        return
    for rule in _known_items(rules):
        try:
            protocol = str(_get(rule, "protocol", "tcp")).lower()
            ports = _port_range(_get(rule, "portRange"))
        except UnknownValueError:
            continue
        if protocol != "tcp":
            continue
        opened = [port for port in CLOSED_PORTS
                  if ports is None or ports[0] <= port <= ports[1]]
        if not opened:
            continue
        try:
            sources = _get(rule, "sourceAddresses") or []
        except UnknownValueError:
            continue
        world = [address for address in _known_items(sources) if _is_everywhere(address)]
        if world:
            names = ", ".join(f"{port} ({CLOSED_PORTS[port]})" for port in opened)
            report_violation(
                f"firewall {args.name} opens {names} to {', '.join(world)}: the whole internet. "
                "Admit etcd clients by droplet tag (clientSourceTags) or by the networks that "
                "need them (clientSourceCidrs).", None)


# --- etcd-mutual-tls ----------------------------------------------------------------------------------

def _file_content(entry: Mapping[str, Any]) -> str:
    content = entry.get("content") or ""
    encoding = str(entry.get("encoding") or "").lower()
    data: bytes = content.encode() if isinstance(content, str) else bytes(content)
    if encoding in ("b64", "base64", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        data = base64.b64decode(data)
    if encoding.startswith(("gz", "gzip")):
        data = gzip.decompress(data)
    return data.decode()


def written_file(user_data: str, path: str) -> str | None:
    """The content of the file at `path` a cloud-config user-data writes, or None."""
    document = yaml.safe_load(user_data)
    if not isinstance(document, dict):
        return None
    for entry in document.get("write_files") or []:
        if isinstance(entry, dict) and entry.get("path") == path:
            return _file_content(entry)
    return None


def etcd_unit(user_data: str) -> str | None:
    """The etcd.service unit a cloud-config user-data writes, or None."""
    return written_file(user_data, ETCD_UNIT_PATH)


def _unit_values(unit: str, key: str) -> list[str]:
    """Values of `key=` lines in the unit's [Service] section (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", unit)
    section = None
    values = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and line.startswith(f"{key}="):
            values.append(line[len(key) + 1:])
    return values


def etcd_flags(exec_start: str) -> dict[str, str | None]:
    """`--name=value` and bare `--name` flags of an ExecStart line (a bare flag maps to None)."""
    flags: dict[str, str | None] = {}
    for word in exec_start.split()[1:]:
        if word.startswith("-"):
            name, sep, value = word.lstrip("-").partition("=")
            flags[name] = value if sep else None
    return flags


def _flag_on(flags: Mapping[str, str | None], name: str) -> bool:
    return name in flags and (flags[name] is None or flags[name] in GO_TRUE)


def mutual_tls_problems(user_data: str) -> list[str]:
    """What keeps this user-data's etcd from requiring client and peer certificates."""
    try:
        unit = etcd_unit(user_data)
    except (yaml.YAMLError, ValueError, binascii.Error, OSError, UnicodeDecodeError) as error:
        return [f"its user-data cannot be read as cloud-config ({error})"]
    if unit is None:
        return [f"its user-data writes no {ETCD_UNIT_PATH}"]
    exec_starts = [line for line in _unit_values(unit, "ExecStart") if line.strip()]
    if len(exec_starts) != 1:
        return [f"{ETCD_UNIT_PATH} has {len(exec_starts)} ExecStart lines, not one"]
    flags = etcd_flags(exec_starts[0])
    problems = []
    if "config-file" in flags:
        problems.append("--config-file is set, so etcd ignores every other flag")
    for name in ("client-cert-auth", "peer-client-cert-auth"):
        if not _flag_on(flags, name):
            problems.append(f"--{name} is not true")
    for name in ("trusted-ca-file", "peer-trusted-ca-file", "cert-file", "key-file",
                 "peer-cert-file", "peer-key-file"):
        if not flags.get(name):
            problems.append(f"--{name} is not set")
    for name in ("listen-client-urls", "advertise-client-urls", "listen-peer-urls",
                 "initial-advertise-peer-urls"):
        plain = [url for url in (flags.get(name) or "").split(",") if not url.startswith("https://")]
        if plain:
            problems.append(f"--{name} has URLs that are not https: {', '.join(plain)}")
    for name in ("auto-tls", "peer-auto-tls"):
        if name in flags and flags[name] not in GO_FALSE:  # bare, true, or unparseable
            problems.append(f"--{name} is on (self-signed certificates nobody checks)")
    # Variables set only flags that are not on the command line: auto-TLS could come from there.
    for environment in _unit_values(unit, "Environment"):
        for assignment in environment.replace('"', " ").split():
            variable, _, value = assignment.partition("=")
            if variable in ("ETCD_AUTO_TLS", "ETCD_PEER_AUTO_TLS") and value not in GO_FALSE:
                problems.append(f"Environment={assignment} turns auto-TLS on")
    for environment_file in _unit_values(unit, "EnvironmentFile"):
        if environment_file.removeprefix("-") != INITIAL_CLUSTER_FILE:
            problems.append(f"EnvironmentFile={environment_file} is set: variables the policy "
                            "cannot read could turn auto-TLS on (ETCD_AUTO_TLS); only "
                            f"{INITIAL_CLUSTER_FILE} (the initial cluster) may be")
    problems += _initial_cluster_file_problems(written_file(user_data, INITIAL_CLUSTER_FILE))
    return problems


def _initial_cluster_file_problems(content: str | None) -> list[str]:
    """The initial-cluster file (the user-data's, or none: a joining member's is written by
    etcd-member-join with the same two variables) may set only the initial cluster."""
    problems = []
    for line in (content or "").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        variable = line.partition("=")[0].strip()
        if variable not in INITIAL_CLUSTER_VARIABLES:
            problems.append(f"{INITIAL_CLUSTER_FILE} sets {variable}, not only "
                            f"{' and '.join(sorted(INITIAL_CLUSTER_VARIABLES))}")
    return problems


def validate_mutual_tls(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != DROPLET or not is_etcd_resource(args.props):
        return
    # Unknown at preview while the certificates it embeds are not created yet: reading it then
    # raises UnknownValueError, which the SDK reports as "can't run policy ... during preview".
    user_data = _get(args.props, "userData")
    if not isinstance(user_data, str) or not user_data.strip():
        report_violation(f"etcd droplet {args.name} has no user-data, so nothing installs etcd "
                         "with mutual TLS on it.", None)
        return
    for problem in mutual_tls_problems(user_data):
        report_violation(f"etcd droplet {args.name}: {problem}. Members must require "
                         "certificates from their CA on the client (2379) and peer (2380) ports "
                         "and never use auto-TLS.", None)


# --- etcd-certificate-minimum-validity ----------------------------------------------------------------

def minimum_validity_days(config: Mapping[str, Any]) -> int:
    value = config.get(MIN_VALIDITY_KEY, DEFAULT_MIN_CERT_VALIDITY_DAYS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{MIN_VALIDITY_KEY} must be a number of days, not {value!r}")
    return int(value)


def validate_certificate_validity(args: ResourceValidationArgs,
                                  report_violation: ReportViolation) -> None:
    if args.resource_type not in (SELF_SIGNED_CERT, LOCALLY_SIGNED_CERT):
        return
    minimum = minimum_validity_days(args.get_config())
    hours = _get(args.props, "validityPeriodHours")
    if not isinstance(hours, (int, float)) or isinstance(hours, bool):
        report_violation(f"certificate {args.name} has no validityPeriodHours.", None)
        return
    if hours < minimum * 24:
        report_violation(
            f"certificate {args.name} is valid for {hours:g} hours ({hours / 24:g} days), less "
            f"than {MIN_VALIDITY_KEY} = {minimum} days: members would need new certificates "
            "rolled out that often. Raise certValidityHours (members and clients) or "
            "caValidityHours (CAs).", None)


# --- the policies -----------------------------------------------------------------------------------

member_count = StackValidationPolicy(
    name="etcd-member-count",
    description="Each etcd cluster has an odd number of members, at most 7 (1, 3, 5 or 7).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_member_count,
)

ignores_rebuild_changes = ResourceValidationPolicy(
    name="etcd-droplet-ignores-rebuild-changes",
    description="etcd droplets ignore changes to user-data, image and SSH keys, which DigitalOcean "
                "applies by rebuilding the droplet.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_ignores_rebuild_changes,
)

members_protected = ResourceValidationPolicy(
    name="etcd-members-protected",
    description="etcd droplets and data volumes are protected, so nothing replaces or deletes "
                "them without an explicit `pulumi state unprotect`.",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=validate_protected,
)

user_data_secret = ResourceValidationPolicy(
    name="etcd-user-data-secret",
    description="etcd droplets' user-data (it holds the member's private keys) is a secret.",
    enforcement_level=EnforcementLevel.REMEDIATE,
    # The SDK's Remediate accepts a plain (not awaitable) result too (policy.py: "elif result is
    # not None: new_props = result"); its type hint names only the awaitable form.
    remediate=cast(Any, remediate_user_data_secret),
)

firewall_closed_to_internet = ResourceValidationPolicy(
    name="etcd-firewall-closed-to-internet",
    description="No firewall opens the etcd client (2379), peer (2380) or metrics (2381) port to "
                "0.0.0.0/0 or ::/0.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_firewall,
)

mutual_tls = ResourceValidationPolicy(
    name="etcd-mutual-tls",
    description="etcd members require client certificates on the client and peer ports "
                "(--client-cert-auth, --peer-client-cert-auth, https URLs, trusted CAs) and "
                "never use auto-TLS.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_mutual_tls,
)

certificate_minimum_validity = ResourceValidationPolicy(
    name="etcd-certificate-minimum-validity",
    description="Certificates are issued for at least minimumCertValidityDays days.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        MIN_VALIDITY_KEY: {
            "type": "integer",
            "minimum": 0,
            "default": DEFAULT_MIN_CERT_VALIDITY_DAYS,
            "description": "Shortest validity, in days, a certificate may be issued for.",
        },
    }),
    validate=validate_certificate_validity,
)

POLICIES = [
    member_count,
    ignores_rebuild_changes,
    members_protected,
    user_data_secret,
    firewall_closed_to_internet,
    mutual_tls,
    certificate_minimum_validity,
]
