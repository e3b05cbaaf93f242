"""Running machines/qemu/create-vm and delete-vm the way pulumi-command does, on a private network.

pulumi-command runs `/bin/sh machines/qemu/create-vm` in the project directory with the member's
user-data on stdin and the ETCD_VM_* variables of machines/README.md in the environment. Here
the scripts run the same way, inside a network namespace of their own (`BridgeNamespace`) that
holds the bridge the VM's NIC joins: the root namespace's networking is never touched.

The NIC is attached by qemu-bridge-helper, which only joins bridges /etc/qemu/bridge.conf allows.
Rather than edit the host's /etc, each script runs in a private mount namespace with an overlay
over /etc whose /etc/qemu/bridge.conf allows the test bridge; it lives as long as that mount
namespace (i.e. until the VM's QEMU exits) and changes nothing outside it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CREATE = "machines/qemu/create-vm"
DELETE = "machines/qemu/delete-vm"
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Run in the namespace: exit 0 once ADDRESS answers an echo request, 1 after ATTEMPTS tries.
_PING = """
import os, select, socket, struct, sys, time
address, attempts = sys.argv[1], int(sys.argv[2])
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
    for sequence in range(attempts):
        header = struct.pack("!BBHHH", 8, 0, 0, ident, sequence)
        payload = b"etcd-qemu-test!!"
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, sequence) + payload
        deadline = time.monotonic() + 1
        try:
            sock.sendto(packet, (address, 0))
        except OSError:
            time.sleep(1)
            continue
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            data, (source, _) = sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4:]
            if source == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                sys.exit(0)
        time.sleep(max(0.0, deadline - time.monotonic()))
sys.exit(1)
"""


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SEARCH_PATH)


def missing_for_real_vm(image_dir: Path) -> str | None:
    """Why a real VM cannot be booted here (None when it can)."""
    for name, package in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"),
                          ("cloud-localds", "cloud-image-utils"), ("ip", "iproute2"),
                          ("unshare", "util-linux")):
        if which(name) is None:
            return f"`{name}` not found: install the Debian package `{package}`"
    if os.geteuid() != 0:
        return "needs root (network namespaces, a bridge, an overlay mount over /etc)"
    probe = f"eqt{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if not (image_dir / "build-info").is_file():
        return (f"no base image at {image_dir} (no build-info): run machines/build-local-image "
                "or set ETCD_LOCAL_IMAGE_DIR")
    return None


def vm_environment(name: str, state_dir: Path, *, mac: str, address: str, gateway: str,
                   image_dir: Path, bridge: str = "br0", accel: str = "auto",
                   cpus: int = 2, memory_mib: int = 1024, data_disk_gib: int = 2,
                   boot_timeout: int = 900) -> dict[str, str]:
    """The ETCD_VM_* variables for one VM: `address` is CIDR, static, matched by `mac`.

    The seed documents are JSON, which is YAML, so no serializer is needed.
    """
    meta_data = {"instance-id": name, "local-hostname": name}
    network_config = {
        "version": 2,
        "ethernets": {
            "lan": {
                "match": {"macaddress": mac},
                "set-name": "eth0",
                "addresses": [address],
                "routes": [{"to": "0.0.0.0/0", "via": gateway}],  # cloud-init 22.4 rejects "default"
            },
        },
    }
    return {
        "ETCD_VM_NAME": name,
        "ETCD_VM_HOSTNAME": f"{name}.test.internal",
        "ETCD_VM_STATE_DIR": str(state_dir),
        "ETCD_VM_CPUS": str(cpus),
        "ETCD_VM_MEMORY_MIB": str(memory_mib),
        "ETCD_VM_DATA_DISK_GIB": str(data_disk_gib),
        "ETCD_VM_MAC": mac,
        "ETCD_VM_META_DATA": json.dumps(meta_data),
        "ETCD_VM_NETWORK_CONFIG": json.dumps(network_config),
        "ETCD_VM_BOOT_TIMEOUT": str(boot_timeout),
        "ETCD_VM_IMAGE_DIR": str(image_dir),
        "ETCD_VM_BRIDGE": bridge,
        "ETCD_VM_ACCEL": accel,
    }


def run_script(script: str, env: Mapping[str, str], stdin: str = "", *,
               prefix: Sequence[str] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`/bin/sh SCRIPT` in the project directory with only PATH, HOME and `env` in the
    environment (what pulumi-command adds to its own), `stdin` on standard input."""
    environment = {"PATH": os.environ.get("PATH", SEARCH_PATH) + ":" + SEARCH_PATH,
                   "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run([*prefix, "/bin/sh", script], cwd=ROOT, env=environment, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def is_vm_process(pid: int, name: str) -> bool:
    """Is `pid` a live process with `name` among its arguments (QEMU's `-name NAME`)?"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return name.encode() in argv


def qemu_pid(state_dir: Path, name: str) -> int | None:
    """The PID in the VM's pidfile if that process is still its QEMU (`-name NAME`)."""
    try:
        pid = int((state_dir / "qemu.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_vm_process(pid, name) else None


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def kill_vm(state_dir: Path, name: str) -> None:
    """Last resort when delete-vm failed: SIGKILL the VM's QEMU (after the same identity check)."""
    pid = qemu_pid(state_dir, name)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while qemu_pid(state_dir, name) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


@dataclass
class BridgeNamespace:
    """A network namespace holding bridge `br0` with the first address of `subnet`."""

    subnet: ipaddress.IPv4Network
    name: str = field(default="")
    workdir: Path = field(default=Path())
    bridge: str = "br0"

    def __post_init__(self) -> None:
        self.name = f"eqt{os.getpid()}-{self.subnet.network_address.packed[2]}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        try:
            self._ip("netns", "add", self.name)
            self._ip("-n", self.name, "link", "set", "lo", "up")
            self._ip("-n", self.name, "link", "add", self.bridge, "type", "bridge")
            self._ip("-n", self.name, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}",
                     "dev", self.bridge)
            self._ip("-n", self.name, "link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def host(self, number: int) -> str:
        return str(self.subnet.network_address + number)

    @staticmethod
    def _ip(*args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")

    def prefix(self) -> list[str]:
        """Run a command in this namespace, in a private mount namespace whose /etc (an
        overlay) has a /etc/qemu/bridge.conf allowing the bridge. Each call gets an overlay of
        its own: concurrent overlay mounts sharing an upper or work directory fail at random."""
        overlay = Path(tempfile.mkdtemp(prefix="etc-", dir=self.workdir))
        for part in ("upper", "work"):
            (overlay / part).mkdir()
        setup = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" '
                 '/etc && mkdir -p /etc/qemu && printf "allow %s\\n" "$2" >/etc/qemu/bridge.conf '
                 '&& shift 2 && exec "$@"')
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", setup, "sh", str(overlay), self.bridge]

    def run(self, script: str, env: Mapping[str, str], stdin: str = "", *,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_script(script, env, stdin, prefix=self.prefix(), timeout=timeout)

    def ping(self, address: str, *, attempts: int = 30) -> bool:
        """Does `address` answer an ICMP echo request from this namespace (one a second)?
        A raw socket in Python: the machine need not have iputils-ping."""
        done = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", _PING,
                               address, str(attempts)], capture_output=True, text=True,
                              timeout=attempts * 2 + 30)
        return done.returncode == 0

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)
