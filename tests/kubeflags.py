"""kube-apiserver's own parsing of the etcd flags this program exports, for tests to check them.

tests/kube_apiserver_flags is a small Go program built from k8s.io/apiserver (pinned in its
go.mod): it registers kube-apiserver's etcd flags, parses a command line, runs kube-apiserver's
validation and resolves --etcd-servers-overrides with kube-apiserver's storage factory.

    resolved = resolve(["--etcd-servers=https://a:2379", "--etcd-servers-overrides=/events#https://e:2379"])
    resolved.servers            # ["https://a:2379"]: every resource without an override
    resolved.overrides          # {"/events": ["https://e:2379"]}, keyed "group/resource"

A command line kube-apiserver rejects raises `KubeApiserverRejected` with kube-apiserver's
message. The binary is built once (about 6 minutes cold on 2 cores) into a cache outside the
repository, keyed by a hash of the Go sources; the `kube_apiserver_flags` fixture builds it, or
skips when Go is not installed. Another test file uses it by importing it:

    from kubeflags import kube_apiserver_flags  # noqa: F401  (a fixture, found by name)

    @pytest.mark.usefixtures("kube_apiserver_flags")
    def test_...() -> None: ...
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parent / "kube_apiserver_flags"
NAME = "kube-apiserver-etcd-flags"
BUILD_TIMEOUT = 1800  # seconds; a cold build (every module compiled) took about 6 minutes on 2 cores
RUN_TIMEOUT = 60


class GoNotInstalled(RuntimeError):
    """`go` is not on PATH, so the binary cannot be built."""


class KubeApiserverRejected(Exception):
    """kube-apiserver would refuse to start with these flags; `message` is what it says."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ResolvedEtcd:
    """Where kube-apiserver stores resources, resource names "group/resource" (group empty for
    the core group, as in --etcd-servers-overrides: "/events", "apps/deployments")."""

    servers: list[str]  # --etcd-servers, as parsed: every resource without an override
    overrides: dict[str, list[str]]  # each override's resource -> its servers
    # each resource asked for by resolve(resources=...) -> its servers, override or not
    resources: dict[str, list[str]] = field(default_factory=dict)


def cache_root() -> Path:
    return Path(os.environ.get("ETCD_TEST_CACHE") or Path.home() / ".cache" / "etcd-cluster").expanduser()


def source_hash() -> str:
    """SHA-256 over the module's go.mod, go.sum and *.go (names and contents, in name order)."""
    digest = hashlib.sha256()
    sources = [MODULE / "go.mod", MODULE / "go.sum", *MODULE.glob("*.go")]
    for path in sorted(sources, key=lambda path: path.name):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def binary_path() -> Path:
    return cache_root() / f"{NAME}-{source_hash()}" / NAME


def go_env() -> dict[str, str]:
    """As scripts/build-pulumi-toolchain: only a module proxy ($ETCD_TOOLCHAIN_GOPROXY, default the
    public one; 'direct' would try source hosts these machines cannot reach), no checksum
    database (go.sum pins every hash), this Go and no other, go.mod and go.sum as committed."""
    return {**os.environ,
            "GOPROXY": os.environ.get("ETCD_TOOLCHAIN_GOPROXY") or "https://proxy.golang.org",
            "GOSUMDB": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false -mod=readonly"}


def build_kube_apiserver_flags() -> Path:
    """The built binary, built first if this version of the sources has not been.

    The build goes to a fresh directory beside the final one, renamed into place when complete:
    an interrupted build leaves no half binary, and of two concurrent builds the second to
    finish finds the first's in place and discards its own.
    """
    binary = binary_path()
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise GoNotInstalled(f"`go` is not on PATH; {NAME} is built from Go modules "
                             "(https://go.dev/doc/install)")
    final = binary.parent
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        built = subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(partial / NAME), "."],
                               cwd=MODULE, env=go_env(), capture_output=True, text=True,
                               timeout=BUILD_TIMEOUT)
        if built.returncode != 0:
            raise RuntimeError(f"building {NAME} in {MODULE} failed (exit {built.returncode}):\n"
                               f"{built.stdout}{built.stderr}")
        partial.chmod(0o755)
        try:
            partial.rename(final)
        except OSError:
            if not binary.is_file():  # not a concurrent build's result in place: a real failure
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return binary


def resolve(flags: Sequence[str], resources: Sequence[str] = (), *,
            binary: Path | None = None) -> ResolvedEtcd:
    """Parse `flags` (kube-apiserver etcd flags, "--etcd-servers=...") as kube-apiserver does and
    resolve each of `resources` ("group/resource") to the servers it is stored in.

    Raises `KubeApiserverRejected` with kube-apiserver's message when it rejects the flags.
    """
    binary = binary or build_kube_apiserver_flags()
    argv = [str(binary), *flags]
    if resources:
        argv += ["--", *resources]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if done.returncode == 1:
        raise KubeApiserverRejected(done.stderr.strip())
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    out = json.loads(done.stdout)
    return ResolvedEtcd(servers=out["servers"], overrides=out["overrides"], resources=out["resources"])


@pytest.fixture(scope="session")
def kube_apiserver_flags() -> Path:
    """The built kube-apiserver-etcd-flags binary (built once, cached across sessions); skips when
    Go is not installed."""
    try:
        return build_kube_apiserver_flags()
    except GoNotInstalled as error:
        pytest.skip(f"Go is not installed: {error}")
