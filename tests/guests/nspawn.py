"""Members as systemd-nspawn system containers: real systemd and real cloud-init from NoCloud seeds.

Each member boots the local base image (machines/build-local-image: `disk.img`, a raw ext4 root
filesystem) with `systemd-nspawn --boot`, on a private network:

- network: a bridge `br0` in a network namespace of its own (never the root namespace) holding the
  gateway address; per member a veth pair, the bridge end in the bridge namespace, the guest end
  with exactly the seed's MAC (so the network-config's `match: macaddress` applies) and already
  the name network-config's `set-name` gives it (there is no udev in a container to rename it)
  in a namespace of the member's own, where nspawn runs and moves it in with
  `--network-interface=` (and back there when the container stops).
- root filesystem: `disk.img` loop-mounted read-only and shared by all members, under a kernel
  overlayfs whose upper directory is the member's own and persists across restarts (a real VM
  keeps its disk when it reboots: cloud-init's instance state, installed software, fstab).
  These mounts live in a private mount namespace (`unshare -m --propagation private`) that
  nspawn runs in, so they vanish with it: the host's mount table is never touched and there is
  nothing to unmount afterwards.
- seed: user-data, meta-data, network-config in a per-member directory, bind-mounted read-only
  at /var/lib/cloud/seed/nocloud.
- data device: a per-member sparse file on a loop device, bind-mounted into the container's /dev
  at `seed.data_device` and at `/dev/disk/by-label/<data_label>`. There is no udev in a container
  (/sys is read-only), so nothing would make that label link; systemd also has no device units
  there, so an fstab `LABEL=` entry becomes a plain mount of `/dev/disk/by-label/<label>`, which
  must therefore exist from boot (it holds no filesystem until the guest formats it: a mount of
  it before then fails, which `nofail` tolerates, exactly like a blank volume on a VM).
- cgroups: this host's PID 1 is not systemd; nspawn gets cgroup2 mounted on /sys/fs/cgroup in
  its private mount namespace, a cgroup of its own (`enc<pid>-...`) and `--register=no
  --keep-unit` (no machined).

Everything made here carries the run's prefix `enc<pid>-` (namespaces, cgroups, loop backing
files under the work directory), is undone through `realcluster.cleanup` (close(), atexit,
SIGTERM/SIGHUP/SIGQUIT; SIGINT raises KeyboardInterrupt which runs close() via the context
manager), and leftovers of a run that was killed outright are reaped by the next run
(`reap_stale_runs`). nspawn is started with a parent-death signal (SIGTERM: an orderly
container shutdown), so a killed test run does not leave containers behind.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml
from realcluster import cleanup, netns

SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The environment commands run with inside a container (nsenter passes ours on otherwise).
GUEST_ENV = {"PATH": SEARCH_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
SEED_DIR_IN_GUEST = "/var/lib/cloud/seed/nocloud"
# Everything this harness names starts with enc<pid>- (namespaces, cgroups, work files).
STALE_NAME = re.compile(r"^enc(\d+)-")
CGROUP2_ROOT = Path("/sys/fs/cgroup/unified")
_clusters = itertools.count()
# cloud-init's log lines that mean something went wrong.
CLOUD_INIT_LOG_PROBLEM = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|Traceback")

# Runs inside the bridge namespace, in a private mount namespace, as the process that becomes
# systemd-nspawn (exec: its PID is nspawn's PID, which stop() signals).
#   $1 disk.img  $2 member dir (lower/, upper/, work/, root/)  $3 cgroup name  $4... nspawn argv
_LAUNCH_SCRIPT = r"""
set -eu
image=$1 dir=$2 cgroup=$3
shift 3
# `ip netns exec` mounted a fresh /sys for the namespace: nspawn needs cgroup2 there.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p "/sys/fs/cgroup/$cgroup"
echo $$ >"/sys/fs/cgroup/$cgroup/cgroup.procs"
# nspawn takes a writable /sys to mean "udev runs here" and then refuses an interface udev has
# not initialised (there is no udev on this host): a read-only /sys says there is none.
mount -o remount,bind,ro /sys
# nspawn keeps per-machine state under /run/systemd/nspawn; /run is not a tmpfs on this host, so
# give it a private one that vanishes with this mount namespace (nothing is left on the host).
mkdir -p /run/systemd/nspawn
mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
# noload: never replay the journal of the shared, read-only base filesystem.
mount -o loop,ro,noload "$image" "$dir/lower"
mount -t overlay overlay \
    -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
exec "$@"
"""


class Unavailable(Exception):
    """This machine cannot run containers; the message says what is missing."""


class MachineError(Exception):
    """A container did not do what it should (did not boot, cloud-init failed, ...)."""


@dataclass(frozen=True)
class MemberSeed:
    name: str  # e.g. "etcd-1": the member's label in this cluster (container names add a run id)
    mac: str  # "52:54:00:ab:cd:ef": the static NIC's MAC; network-config matches on it
    user_data: str  # the cloud-init user-data (#cloud-config ...)
    meta_data: str  # YAML: instance-id, local-hostname
    network_config: str  # YAML network-config v2 (static address matched by MAC)
    data_device: str  # the data block device's path in the guest: /dev/disk/by-id/virtio-etcd-data


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=SEARCH_PATH)
    if not found:
        raise Unavailable(f"`{name}` not found: install the Debian package `{package}`")
    return found


@dataclass(frozen=True)
class Tools:
    ip: str
    nspawn: str
    unshare: str
    nsenter: str
    setpriv: str
    losetup: str
    blkid: str
    sh: str


@functools.cache
def _tools_or_reason() -> Tools | str:
    if os.geteuid() != 0:
        return "not root: systemd-nspawn containers, loop devices and network namespaces need root"
    try:
        found = Tools(ip=tool("ip", "iproute2"), nspawn=tool("systemd-nspawn", "systemd-container"),
                      unshare=tool("unshare", "util-linux"), nsenter=tool("nsenter", "util-linux"),
                      setpriv=tool("setpriv", "util-linux"), losetup=tool("losetup", "mount"),
                      blkid=tool("blkid", "util-linux"), sh=tool("sh", "dash"))
    except Unavailable as missing:
        return str(missing)
    probe = f"enc{os.getpid()}-probe"
    made = subprocess.run([found.ip, "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        return f"cannot create network namespaces: `ip netns add` failed: {made.stderr.strip()}"
    subprocess.run([found.ip, "netns", "del", probe], capture_output=True, timeout=30)
    if "overlay" not in Path("/proc/filesystems").read_text():
        subprocess.run(["modprobe", "overlay"], capture_output=True, timeout=30)
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "the kernel has no overlay filesystem (modprobe overlay failed)"
    if not CGROUP2_ROOT.is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "no cgroup2 hierarchy on this host (systemd-nspawn needs one)"
    return found


def tools() -> Tools:
    """The host tools, or Unavailable naming what is missing (tests turn it into a skip)."""
    found = _tools_or_reason()
    if isinstance(found, str):
        raise Unavailable(found)
    return found


def _cgroup2_root() -> Path:
    """Where the host's cgroup2 hierarchy is mounted (hybrid: .../unified; unified: the root)."""
    return CGROUP2_ROOT if CGROUP2_ROOT.is_dir() else Path("/sys/fs/cgroup")


def _run(argv: Sequence[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise MachineError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def stale(name: str) -> bool:
    """A name this harness made (`enc<pid>-...`) in a process that no longer exists."""
    return netns.stale(name, STALE_NAME)


@functools.cache
def reap_stale_runs() -> list[str]:
    """Remove what runs of this harness that were killed outright (SIGKILL) left behind: their
    network namespaces, loop devices (backing files named enc<pid>-...) and cgroups. Their
    containers stopped through nspawn's parent-death signal. Only names with this harness's
    prefix and a dead pid are touched."""
    removed: list[str] = []
    ip = tools().ip
    listing = _run([ip, "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        name = line.split(" ", 1)[0]
        if name and stale(name):
            _run([ip, "netns", "del", name], check=False)
            removed.append(f"network namespace {name}")
    loops = _run([tools().losetup, "--list", "--json", "--output", "NAME,BACK-FILE"], check=False).stdout
    with contextlib.suppress(ValueError, KeyError, TypeError):
        for device in json.loads(loops or '{"loopdevices": []}')["loopdevices"]:
            backing = Path(device.get("back-file") or "")
            if stale(backing.name):
                _run([tools().losetup, "--detach", device["name"]], check=False)
                removed.append(f"loop device {device['name']} ({backing})")
    root = _cgroup2_root()
    for directory in root.glob("enc*-*"):
        if directory.is_dir() and stale(directory.name):
            _remove_cgroup(directory)
            removed.append(f"cgroup {directory}")
    return removed


def _remove_cgroup(directory: Path) -> None:
    """rmdir a cgroup and its children (deepest first); a cgroup with processes stays."""
    if not directory.is_dir():
        return
    for child in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()


@dataclass
class _Member:
    seed: MemberSeed
    index: int
    directory: Path
    machine: str  # the container's machine name (unique per run)
    host_link: str  # veth end on the bridge
    guest_link: str  # veth end moved into the container (carries seed.mac)
    namespace: str  # where nspawn runs and the guest end waits (and returns to on stop)
    loop_device: str = ""
    process: subprocess.Popen[bytes] | None = None
    console: IO[bytes] | None = None
    started_at: float = 0.0
    tokens: list[int] = field(default_factory=list)  # namespace, loop device
    container_token: int | None = None  # the running container (stop it)

    @property
    def cgroup(self) -> str:
        return self.machine


class NspawnCluster:
    """Containers for `seeds` on one bridge; use as a context manager (or call close()).

    Nothing is started by the constructor except the network: call start(name) per member
    (or start_all()). `workdir` holds every member's files (overlay upper directory, seed,
    data-disk file, console log) and is left in place for inspection; it must be on a filesystem
    overlayfs accepts as upper (ext4, xfs; not tmpfs-on-overlay or NFS).

    The data device: `data_disk_bytes` sparse file per member; `data_label`, `data_mountpoint`,
    `data_mount_options` describe the member's fstab entry for it, which systemd does not honour
    in a container: the harness mounts it at boot instead once it carries the label (see
    `_data_mount_binds`).
    """

    def __init__(self, image_dir: Path, seeds: Sequence[MemberSeed], workdir: Path,
                 network_cidr_gateway: str = "192.168.56.1/24", *, data_disk_bytes: int = 1 << 30,
                 data_label: str = "etcd-data", data_mountpoint: str = "/var/lib/etcd",
                 data_mount_options: str = "defaults,noatime") -> None:
        self.tools = tools()
        reap_stale_runs()
        self.image = Path(image_dir) / "disk.img"
        if not (Path(image_dir) / "build-info").is_file() or not self.image.is_file():
            raise Unavailable(f"{image_dir} is not a complete image (no build-info or disk.img): "
                              "build it with machines/build-local-image")
        names = [seed.name for seed in seeds]
        if len(set(names)) != len(names):
            raise ValueError(f"member names repeat: {names}")
        self.gateway = ipaddress.ip_interface(network_cidr_gateway)
        self.data_disk_bytes = data_disk_bytes
        self.data_label = data_label
        self.data_mountpoint = data_mountpoint
        self.data_mount_options = data_mount_options
        self.prefix = f"enc{os.getpid()}-{next(_clusters)}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._tokens: list[int] = []
        self._closed = False
        self.members: dict[str, _Member] = {}
        try:
            self.bridge_namespace = f"{self.prefix}-br"
            self._ip("netns", "add", self.bridge_namespace)
            self._tokens.append(cleanup.register(
                f"network namespace {self.bridge_namespace}",
                functools.partial(self._ip, "netns", "del", self.bridge_namespace)))
            self._ip("-n", self.bridge_namespace, "link", "set", "lo", "up")
            self._ip("-n", self.bridge_namespace, "link", "add", "br0", "type", "bridge")
            self._ip("-n", self.bridge_namespace, "addr", "add", str(self.gateway), "dev", "br0")
            self._ip("-n", self.bridge_namespace, "link", "set", "br0", "up")
            for index, seed in enumerate(seeds, start=1):
                self._add_member(index, seed)
        except BaseException:
            self.close()
            raise

    # -- setup -------------------------------------------------------------------------------

    def _ip(self, *args: str) -> None:
        _run([self.tools.ip, *args])

    def _add_member(self, index: int, seed: MemberSeed) -> None:
        directory = self.workdir / seed.name
        member = _Member(seed=seed, index=index, directory=directory,
                         machine=f"{self.prefix}-{seed.name}"[:64],
                         host_link=f"vh{index}", guest_link=_guest_interface_name(seed),
                         namespace=f"{self.prefix}-m{index}")
        self.members[seed.name] = member
        self._ip("netns", "add", member.namespace)
        member.tokens.append(cleanup.register(
            f"network namespace {member.namespace}",
            functools.partial(self._ip, "netns", "del", member.namespace)))
        for sub in ("lower", "upper", "work", "root"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        # The seed holds the member's private keys: only root may read it.
        seed_dir = directory / "seed"
        seed_dir.mkdir(mode=0o700, exist_ok=True)
        seed_dir.chmod(0o700)
        for document, text in (("user-data", seed.user_data), ("meta-data", seed.meta_data),
                               ("network-config", seed.network_config)):
            path = seed_dir / document
            path.write_text(text if text.endswith("\n") else text + "\n")
            path.chmod(0o600)
        # The data disk: a sparse file named with the run prefix (so a stale loop device of a
        # killed run can be recognised by its backing file), kept across restarts.
        data_file = directory / f"{self.prefix}-{seed.name}-data.img"
        if not data_file.exists():
            with data_file.open("wb") as handle:
                handle.truncate(self.data_disk_bytes)
        member.loop_device = _run([self.tools.losetup, "--find", "--show", str(data_file)]).stdout.strip()
        member.tokens.append(cleanup.register(
            f"loop device {member.loop_device}",
            functools.partial(_detach_loop, self.tools.losetup, member.loop_device)))

    # -- running the bridge namespace's processes ----------------------------------------------

    def bridge_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the bridge namespace (where the gateway address lives)."""
        return [self.tools.ip, "netns", "exec", self.bridge_namespace, *argv]

    def run_in_bridge_ns(self, argv: Sequence[str], timeout: float = 60,
                         **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.bridge_argv(argv), capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def popen_in_bridge_ns(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` in the bridge namespace (e.g. an HTTP server on the gateway address).
        It is killed by close() (and on signals) if still running; its PID is argv's own
        (`ip netns exec` execs)."""
        process: subprocess.Popen[Any] = subprocess.Popen(self.bridge_argv(argv), **kwargs)
        self._tokens.append(cleanup.register(
            f"process {process.pid} ({argv[0]})", functools.partial(_stop_process, process, 10)))
        return process

    # -- containers ---------------------------------------------------------------------------

    def member(self, name: str) -> _Member:
        try:
            return self.members[name]
        except KeyError:
            raise KeyError(f"no member {name!r} (members: {', '.join(self.members)})") from None

    def running(self, name: str) -> bool:
        process = self.member(name).process
        return process is not None and process.poll() is None

    def start_all(self) -> None:
        for name in self.members:
            self.start(name)

    def start(self, name: str) -> None:
        """Boot the member's container (its overlay and data disk keep their state)."""
        member = self.member(name)
        if self.running(name):
            raise MachineError(f"{name} is already running")
        self._reap_exited(member)
        seed = member.seed
        # The veth pair disappears with the container's network namespace: make it each boot.
        # A fresh veth pair each boot: the bridge end in the bridge namespace, the guest end
        # (the seed's MAC, the name network-config gives it) in the member's own namespace,
        # where nspawn runs: it moves the guest end in, and back there when the container
        # stops, so names never collide between members.
        if self._link_exists(member.host_link):
            self._ip("-n", self.bridge_namespace, "link", "del", member.host_link)
        self._ip("-n", self.bridge_namespace, "link", "add", member.host_link, "type", "veth",
                 "peer", "name", member.guest_link, "address", seed.mac, "netns", member.namespace)
        self._ip("-n", self.bridge_namespace, "link", "set", member.host_link, "master", "br0", "up")
        binds = [f"--bind={member.loop_device}:{path}" for path in self._data_device_paths(member)]
        binds += self._data_mount_binds(member)
        nspawn = [
            self.tools.nspawn, "--boot", "--quiet", "--settings=false",
            "--register=no", "--keep-unit",
            f"--machine={member.machine}", f"--directory={member.directory / 'root'}",
            f"--network-interface={member.guest_link}",
            f"--bind-ro={member.directory / 'seed'}:{SEED_DIR_IN_GUEST}",
            *binds,
            # The image's fstab names the root filesystem by label (what a VM boots from); a
            # container's root is the overlay, which has no label, so remounting / per fstab
            # fails: mask the unit in the container only (a /dev/null unit file is a mask).
            "--bind-ro=/dev/null:/etc/systemd/system/systemd-remount-fs.service",
            # The guest's own: DNS and time zone come from its image and cloud-init; the journal
            # stays inside the container (never linked into the host's /var/log/journal).
            "--resolv-conf=off", "--timezone=off", "--link-journal=no",
            "--console=read-only",
        ]
        argv = [
            self.tools.setpriv, "--pdeathsig", "TERM", "--",
            self.tools.ip, "netns", "exec", member.namespace,
            self.tools.unshare, "--mount", "--propagation", "private",
            self.tools.sh, "-c", _LAUNCH_SCRIPT, "launch",
            str(self.image), str(member.directory), member.cgroup, *nspawn,
        ]
        console = (member.directory / "console.log").open("ab")
        console.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} start {member.machine} =====\n"
                      .encode())
        console.flush()
        member.console = console
        member.started_at = time.monotonic()
        member.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                          stderr=subprocess.STDOUT)
        member.container_token = cleanup.register(
            f"container {member.machine}", functools.partial(self._stop_quietly, member, 60.0))

    def _data_device_paths(self, member: _Member) -> list[str]:
        """Where the member's data device appears in its container's /dev (no udev there):
        - `seed.data_device`, the path the member's user-data waits for;
        - its kernel name (/dev/loopN, as /proc/partitions lists it), so libblkid's scan finds
          it and `mount LABEL=...` works;
        - /dev/disk/by-label/<data_label> once it carries that label (as udev would link it), so
          systemd's fstab mount (LABEL= becomes that path; no device units in a container)
          mounts it at boot. Not before: a blank device there would make `mount -a` report an
          error for the `nofail` entry where a VM's `mount -a` finds no such label and is quiet.
        """
        paths = [member.seed.data_device, member.loop_device]
        if self.data_label in self._data_device_labels(member):
            paths.append(f"/dev/disk/by-label/{self.data_label}")
        return list(dict.fromkeys(paths))

    def _data_mount_binds(self, member: _Member) -> list[str]:
        """systemd ignores fstab entries for devices in a container ("Running in a container,
        ignoring fstab device entry"), so the member's `LABEL=<data_label> <data_mountpoint>`
        line would never be mounted at boot there, and a unit with RequiresMountsFor= on it would
        start on the bare mountpoint. Give the container the mount unit the fstab generator makes
        on a VM (bind-mounted read-only, and wanted by local-fs.target), once the data device
        carries its label (a first boot formats it; until then a VM's nofail entry mounts
        nothing either)."""
        if self.data_label not in self._data_device_labels(member):
            return []
        unit_name = _mount_unit_name(self.data_mountpoint)
        unit = member.directory / unit_name
        unit.write_text(
            "# Written by tests/guests/nspawn.py: systemd does not mount fstab device entries in\n"
            "# a container; this is the unit its fstab generator makes on a VM.\n"
            "[Unit]\nDocumentation=man:fstab(5) man:systemd-fstab-generator(8)\n"
            "Before=local-fs.target\n\n"
            f"[Mount]\nWhat=/dev/disk/by-label/{self.data_label}\nWhere={self.data_mountpoint}\n"
            f"Type=ext4\nOptions={self.data_mount_options}\n")
        # Pulled in by local-fs.target, as fstab entries are (a drop-in: systemd only honours
        # symlinks in .wants directories, and a bind mount cannot be a symlink).
        wants = member.directory / "local-fs-wants-data.conf"
        wants.write_text(f"[Unit]\nWants={unit_name}\n")
        return [f"--bind-ro={unit}:/etc/systemd/system/{unit_name}",
                f"--bind-ro={wants}:/etc/systemd/system/local-fs.target.d/nspawn-data-volume.conf"]

    def _data_device_labels(self, member: _Member) -> list[str]:
        found = _run([self.tools.blkid, "-p", "-s", "LABEL", "-o", "value", member.loop_device],
                     check=False).stdout
        return found.split()

    def _link_exists(self, link: str) -> bool:
        return _run([self.tools.ip, "-n", self.bridge_namespace, "link", "show", link],
                    check=False).returncode == 0

    def stop(self, name: str, timeout: float = 90) -> None:
        """Power the container off cleanly (SIGTERM to nspawn: it sends the container's systemd
        SIGRTMIN+3, an orderly halt) and wait for nspawn to exit; MachineError if it did not
        exit cleanly in time (then it was killed)."""
        member = self.member(name)
        if member.process is None:
            raise MachineError(f"{name} was never started")
        status = self._stop_member(member, timeout)
        self._reap_exited(member)
        if status != 0:
            raise MachineError(f"{name}: systemd-nspawn exited with status {status}"
                               f"{self._console_tail(member)}")

    def restart(self, name: str, timeout: float = 90) -> None:
        self.stop(name, timeout)
        self.start(name)

    def _stop_member(self, member: _Member, timeout: float) -> int:
        process = member.process
        if process is None:
            return 0
        status = _terminate(process, timeout)
        if member.console is not None:
            member.console.close()
            member.console = None
        _remove_cgroup(_cgroup2_root() / member.cgroup)
        return status

    def _stop_quietly(self, member: _Member, timeout: float) -> None:
        self._stop_member(member, timeout)

    def _reap_exited(self, member: _Member) -> None:
        """Forget a container that has exited (run its cleanup: console, cgroup)."""
        if member.process is not None and member.process.poll() is not None:
            if member.container_token is not None:
                cleanup.run(member.container_token)
                member.container_token = None
            member.process = None

    def init_pid(self, name: str) -> int:
        """Host PID of the container's PID 1 (systemd): the child of nspawn whose PID in its own
        namespace is 1."""
        member = self.member(name)
        process = member.process
        if process is None or process.poll() is not None:
            raise MachineError(f"{name} is not running{self._console_tail(member)}")
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    status = Path(f"/proc/{child}/status").read_text()
                    found = re.search(r"^NSpid:\s+(.*)$", status, re.MULTILINE)
                    if found and found.group(1).split()[-1] == "1":
                        return int(child)
        raise MachineError(f"{name}: container init not started yet")

    def exec(self, name: str, argv: Sequence[str], timeout: float = 120, check: bool = False,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the running container (all its namespaces and its root), as root,
        with a plain environment; like `machinectl shell`, without machined."""
        pid = self.init_pid(name)
        command = [self.tools.nsenter, f"--target={pid}", "--mount", "--uts", "--ipc", "--net",
                   "--pid", "--cgroup", "--root", "--wd", "--",
                   "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in GUEST_ENV.items()), *argv]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise MachineError(f"{name}: {' '.join(argv)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return done

    def wait_booted(self, name: str, timeout: float = 120) -> None:
        """Until the container's systemd answers (the container can run commands)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(MachineError, subprocess.TimeoutExpired):
                if self.exec(name, ["systemctl", "is-system-running"], timeout=10).stdout.strip():
                    return
            self._check_running(name)
            if time.monotonic() > deadline:
                raise MachineError(f"{name}: no systemd answering after {timeout} s"
                                   f"{self._console_tail(self.member(name))}")
            time.sleep(0.5)

    def wait_cloud_init(self, name: str, timeout: float = 600, *, allow_log_problems: bool = False) -> str:
        """Wait until cloud-init has finished in the container; returns `cloud-init status
        --long`. Raises CloudInitFailed if it ended in error or reported problems (cloud-init 22.4
        keeps warnings out of `status`: its log is read too, unless `allow_log_problems`), and
        MachineError if the container exited or the time ran out."""
        deadline = time.monotonic() + timeout
        output = ""
        while time.monotonic() < deadline:
            self._check_running(name)
            with contextlib.suppress(MachineError, subprocess.TimeoutExpired):
                output = self.exec(name, ["cloud-init", "status", "--long"], timeout=30).stdout
                status = re.search(r"^status:\s*(.+)$", output, re.MULTILINE)
                if status and status.group(1).strip() not in ("running", "not run", "not started"):
                    problems = cloud_init_problems(output)
                    if not allow_log_problems:
                        problems += self.cloud_init_log_problems(name)
                    if problems:
                        raise CloudInitFailed(f"{name}: cloud-init did not finish cleanly:\n{output}"
                                              + "\n".join(problems)
                                              + self._console_tail(self.member(name)))
                    return output
            time.sleep(1)
        raise MachineError(f"{name}: cloud-init not finished after {timeout} s; last status:\n"
                           f"{output}{self._console_tail(self.member(name))}")

    def cloud_init_log_problems(self, name: str) -> list[str]:
        """Lines of the container's /var/log/cloud-init.log that report a problem (WARNING,
        ERROR, CRITICAL, a traceback), all boots."""
        log = self.exec(name, ["cat", "/var/log/cloud-init.log"], check=True).stdout
        return [line for line in log.splitlines() if CLOUD_INIT_LOG_PROBLEM.search(line)]

    def boot_seconds(self, name: str) -> float:
        """Seconds since the member's last start() (for measuring boot time)."""
        return time.monotonic() - self.member(name).started_at

    def console_log(self, name: str) -> str:
        """Everything the container printed on its console (all boots of this run)."""
        path = self.member(name).directory / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _console_tail(self, member: _Member, lines: int = 40) -> str:
        tail = self.console_log(member.seed.name).splitlines()[-lines:]
        return f"\n--- console of {member.seed.name} (last {lines} lines) ---\n" + "\n".join(tail)

    def _check_running(self, name: str) -> None:
        member = self.member(name)
        if member.process is None or member.process.poll() is not None:
            code = None if member.process is None else member.process.returncode
            raise MachineError(f"{name}: container exited (status {code}){self._console_tail(member)}")

    # -- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every container and undo everything (newest first); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Containers first (in parallel would be faster; each stops in a second or two).
        for member in reversed(list(self.members.values())):
            if member.container_token is not None:
                cleanup.run(member.container_token)
                member.container_token = None
        for member in reversed(list(self.members.values())):
            while member.tokens:
                cleanup.run(member.tokens.pop())
        while self._tokens:
            cleanup.run(self._tokens.pop())

    def __enter__(self) -> NspawnCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class CloudInitFailed(MachineError):
    """cloud-init finished with an error, or reported errors or recoverable problems."""


def cloud_init_problems(status_long: str) -> list[str]:
    """Problems `cloud-init status --long` reports: a status other than done, entries under
    errors / recoverable_errors (cloud-init 23+), a `detail` that is not the datasource line."""
    problems: list[str] = []
    status = re.search(r"^status:\s*(.+)$", status_long, re.MULTILINE)
    if not status or status.group(1).strip() != "done":
        problems.append(f"status is {status.group(1).strip() if status else 'missing'}")
    if re.search(r"^extended_status:\s*(?!done\s*$)", status_long, re.MULTILINE):
        problems.append("extended_status is not done")
    errors = re.search(r"^errors:\s*(.*)$", status_long, re.MULTILINE)
    if errors and errors.group(1).strip() not in ("", "[]"):
        problems.append(f"errors: {errors.group(1).strip()}")
    for listed in re.findall(r"^(?:errors|recoverable_errors):\s*\n((?:[ \t-].*\n?)+)", status_long,
                             re.MULTILINE):
        problems.append(f"listed problems: {listed.strip()}")
    recoverable = re.search(r"^recoverable_errors:\s*(.+)$", status_long, re.MULTILINE)
    if recoverable and recoverable.group(1).strip() not in ("{}", ""):
        problems.append(f"recoverable_errors: {recoverable.group(1).strip()}")
    return problems


def _guest_interface_name(seed: MemberSeed) -> str:
    """The name network-config gives the NIC with the seed's MAC (`set-name`), so the container
    starts with it (cloud-init has nothing to rename, and nspawn finds the interface by that name
    to move it back when the container stops); else the entry's own name, else eth0."""
    with contextlib.suppress(yaml.YAMLError, AttributeError, TypeError):
        loaded: dict[str, Any] = yaml.safe_load(seed.network_config) or {}
        document: dict[str, Any] = loaded.get("network") or loaded
        for name, ethernet in (document.get("ethernets") or {}).items():
            entry = ethernet or {}
            match = entry.get("match") or {}
            if str(match.get("macaddress", "")).lower() == seed.mac.lower():
                return str(entry.get("set-name") or name)[:15]
    return "eth0"


def _mount_unit_name(path: str) -> str:
    """systemd's unit name for a mount point (`systemd-escape --path --suffix=mount`)."""
    def escape(part: str) -> str:
        return "".join(c if c.isalnum() or c in "_." else f"\\x{ord(c):02x}" for c in part)
    parts = [part for part in path.split("/") if part]
    return ("-".join(escape(part) for part in parts) or "-") + ".mount"


def _detach_loop(losetup: str, device: str) -> None:
    _run([losetup, "--detach", device], check=False)


def _stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    _terminate(process, timeout)


def _terminate(process: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(30)
    return process.returncode


@contextlib.contextmanager
def nspawn_cluster(image_dir: Path, seeds: Sequence[MemberSeed], workdir: Path,
                   **kwargs: Any) -> Iterator[NspawnCluster]:
    cluster = NspawnCluster(image_dir, seeds, workdir, **kwargs)
    try:
        yield cluster
    finally:
        cluster.close()


def seeds_by_name(seeds: Sequence[MemberSeed]) -> Mapping[str, MemberSeed]:
    return {seed.name: seed for seed in seeds}
