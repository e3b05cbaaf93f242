"""The real Pulumi engine, run offline: the CLI, language host and plugins that
scripts/build-pulumi-toolchain builds from Go modules, a local file backend and a passphrase.

`Project` is one copy of the program (the files `pulumi` reads, never the repository itself, so
stack files and state stay in the test's directory) with its own PULUMI_HOME and state. It can
run `pulumi` as this user or, for what the README has users run as themselves, as an
unprivileged user (`nobody`), inside a wrapper such as a network namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import realcheck
import yaml
from guests.commands import hosts_file, http_server_argv, local_stack_config
from guests.local_cluster import QEMU_SUBNET
from guests.qemu import BridgeNamespace, kill_vm
from realcluster import cleanup

from cloudinit import userdata

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build-pulumi-toolchain"
PROJECT = "etcd-cluster"
# What `pulumi` reads of the program; .venv is linked or made, never copied.
PROGRAM_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "model", "components", "cloudinit",
                 "machines")
PASSPHRASE = "engine-tests-passphrase"
NOBODY = (65534, 65534)
BRIDGE_HELPER = Path("/usr/lib/qemu/qemu-bridge-helper")
TUN_DEVICE = Path("/dev/net/tun")


def _record_timing(args: Sequence[str], seconds: float, shown: str) -> None:
    """With $ETCD_ENGINE_TIMINGS (a directory): each command's seconds, and each output."""
    directory = os.environ.get("ETCD_ENGINE_TIMINGS")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    count = len(list(path.glob("*.out")))
    with (path / "timings.log").open("a") as log:
        log.write(f"{count:03d} {seconds:7.1f} s  pulumi {' '.join(args)}\n")
    (path / f"{count:03d}.out").write_text(shown)


def toolchain_or_skip() -> Path:
    """The built toolchain: $ETCD_PULUMI_TOOLCHAIN, or the build script's cache."""
    given = os.environ.get("ETCD_PULUMI_TOOLCHAIN")
    if given:
        if not (Path(given) / "build-info").is_file():
            pytest.fail(f"ETCD_PULUMI_TOOLCHAIN={given} is not a built toolchain (no build-info)")
        return Path(given)
    done = subprocess.run([str(BUILD_SCRIPT), "--cached"], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        pytest.skip("the Pulumi toolchain is not built: run scripts/build-pulumi-toolchain "
                    "(needs Go and the Go module proxy; about 8 minutes once on 2 cores)")
    return Path(done.stdout.strip())


def world_readable_dir(prefix: str) -> Path:
    """A fresh directory other users may enter (pytest's own tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass
class Project:
    directory: Path
    toolchain: Path
    # Run `pulumi` as this (uid, gid) instead of as this process.
    user: tuple[int, int] | None = None
    # Where the program's files come from: this checkout, or an older version of it.
    source: Path = REPO
    # Which of them make the program (another program: its own files).
    files: tuple[str, ...] = PROGRAM_FILES
    home: Path = field(init=False)
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.directory / ".pulumi-home"
        self.state = self.directory / ".state"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._copy_program(self.source)
        self._link_venv()
        self.state.mkdir()
        self._install_plugins()
        if self.user is not None:
            for path in (self.directory, *self.directory.rglob("*")):
                if not path.is_symlink():
                    os.chown(path, *self.user)

    def _copy_program(self, source: Path) -> None:
        for name in self.files:
            if (source / name).is_dir():
                shutil.copytree(source / name, self.directory / name,
                                ignore=shutil.ignore_patterns("__pycache__", ".local"))
            else:
                shutil.copy2(source / name, self.directory / name)

    def replace_program(self, source: Path) -> None:
        """The program's files, now from `source` (an upgrade of the program on a live stack)."""
        for name in self.files:
            target = self.directory / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        self._copy_program(source)
        if self.user is not None:
            for path in (self.directory, *self.directory.rglob("*")):
                if not path.is_symlink():
                    os.chown(path, *self.user)

    def _link_venv(self) -> None:
        """The repository's .venv, if the user `pulumi` runs as can use it; else a new one, on a
        Python that user can reach (a venv made from a Python under /root is not)."""
        venv = REPO / ".venv"
        if self.user is None or _usable_by_anyone(venv / "bin" / "python"):
            (self.directory / ".venv").symlink_to(venv)
            return
        python = next((candidate for candidate in ("/usr/bin/python3", shutil.which("python3"))
                       if candidate and _usable_by_anyone(Path(candidate))), None)
        if python is None:
            pytest.fail("no python3 that an unprivileged user can run (/usr/bin/python3)")
        subprocess.run([python, "-m", "venv", str(self.directory / ".venv")], check=True,
                       timeout=300)
        subprocess.run([str(self.directory / ".venv" / "bin" / "pip"), "install", "--quiet",
                        "--disable-pip-version-check", "-r", str(REPO / "requirements.txt")],
                       check=True, timeout=900)

    def _install_plugins(self) -> None:
        """The built plugins, installed into this PULUMI_HOME the way the CLI installs them."""
        info = json.loads((self.toolchain / "build-info").read_text())
        for name in ("command", "tls"):
            self.pulumi("plugin", "install", "resource", name, info[name], "--file",
                        str(self.toolchain / "plugins" / f"pulumi-resource-{name}"),
                        as_user=False)

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.toolchain / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.directory),
            "LANG": "C.UTF-8",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": f"file://{self.state}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # Only the plugins installed above: never a binary that happens to be on PATH.
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        }

    def pulumi(self, *args: str, check: bool = True, timeout: float = 600,
               wrapper: Sequence[str] = (), as_user: bool = True,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `pulumi ARGS` in the project; `wrapper` goes in front (e.g. a namespace)."""
        argv = [str(self.toolchain / "bin" / "pulumi"), *args]
        if as_user and self.user is not None:
            uid, gid = self.user
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]
        started = time.monotonic()
        done = subprocess.run([*wrapper, *argv], cwd=self.directory, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, input=stdin)
        _record_timing(args, time.monotonic() - started, done.stdout)
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}{member_side_summary(done.stdout)}")
        return done

    def init_stack(self, stack: str, config: Mapping[str, Any]) -> None:
        """`pulumi stack init` with `config` (bare setting names) as Pulumi.<stack>.yaml."""
        values = {(key if ":" in key else f"{PROJECT}:{key}"): value
                  for key, value in config.items() if value is not None}
        path = self.directory / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": values}, sort_keys=True))
        if self.user is not None:
            os.chown(path, *self.user)
        self.pulumi("stack", "init", stack, "--non-interactive")

    def outputs(self, stack: str) -> dict[str, Any]:
        done = self.pulumi("stack", "output", "--json", "--show-secrets", "--stack", stack)
        return dict(json.loads(done.stdout))

    def state_text(self) -> str:
        """Every file of the backend's state, as one text (to look for values in clear)."""
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted(self.state.rglob("*")) if path.is_file())

    def resources(self, stack: str) -> list[dict[str, Any]]:
        done = self.pulumi("stack", "export", "--stack", stack)
        deployment = json.loads(done.stdout)["deployment"]
        return list(deployment.get("resources") or [])


def _usable_by_anyone(path: Path) -> bool:
    """Can any user run `path`: every directory on its real path searchable by others, and
    the file readable and executable by others?"""
    resolved = path.resolve()
    if not resolved.is_file():
        return False
    searchable = all(parent.stat().st_mode & 0o001 for parent in resolved.parents)
    return searchable and resolved.stat().st_mode & 0o005 == 0o005


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A world-readable directory, removed afterwards whatever happens."""
    directory = world_readable_dir(prefix)
    token = cleanup.register(f"engine directory {directory}",
                             lambda: shutil.rmtree(directory, ignore_errors=True))
    try:
        yield directory
    finally:
        cleanup.run(token)


def offline_local_config(directory: Path, members: int = 3, **extra: Any) -> dict[str, Any]:
    """A local stack that needs no image or network to preview (nothing boots in a preview)."""
    return local_stack_config(members=members, state_dir=directory / "vms",
                              image_dir=directory / "image", release_sha256="ab" * 32, **extra)


# The member-side scripts prefix every line they print with their name.
MEMBER_SIDE_SCRIPTS = tuple(f"{script}:" for script in userdata.SCRIPTS)


def member_side_summary(shown: str, lines: int = 60) -> str:
    """The last lines the member-side scripts printed in a `pulumi up`, repeated at the end of
    a failure message: a long output is cut in the middle, and these say why a step failed."""
    said = [line.strip() for line in shown.splitlines()
            if any(script in line for script in MEMBER_SIDE_SCRIPTS)]
    if not said:
        return ""
    return ("\n--- the member-side scripts said (last lines) ---\n"
            + "\n".join(said[-lines:]) + "\n")


@dataclass
class LocalEngineStack:
    """The local stack of a Project, set up to boot for real: `wrapper` runs `pulumi` inside
    the namespace of the members' bridge, where the etcd release is served."""

    project: Project
    stack: str
    wrapper: list[str]
    namespace: str
    vms: Path

    def pulumi(self, *args: str, check: bool = True,
               timeout: float = 2400) -> subprocess.CompletedProcess[str]:
        return self.project.pulumi(*args, "--stack", self.stack, check=check, timeout=timeout,
                                   wrapper=self.wrapper)

    @property
    def gateway(self) -> str:
        """The bridge's address, where the members reach the test's servers."""
        return str(QEMU_SUBNET.network_address + 1)

    def sibling(self, stack: str, **settings: Any) -> LocalEngineStack:
        """Another stack of the same project on the same bridge, with this stack's plain
        settings and `settings` on top (None removes one). Secrets are the stack's own: set
        them with `pulumi config set --secret` (a stack's encrypted values open with its own
        salt only)."""
        own = yaml.safe_load((self.project.directory / f"Pulumi.{self.stack}.yaml").read_text())
        plain = {key.removeprefix(f"{PROJECT}:"): value
                 for key, value in own["config"].items() if not isinstance(value, dict)}
        self.project.init_stack(stack, {**plain, **settings})
        return LocalEngineStack(project=self.project, stack=stack, wrapper=self.wrapper,
                                namespace=self.namespace, vms=self.vms)


@contextlib.contextmanager
def local_engine_stack(toolchain: Path, image: Path, release: tuple[Path, str], directory: Path,
                       stack: str, members: int = 3,
                       extra: Mapping[str, Any] | None = None) -> Iterator[LocalEngineStack]:
    """A Project run as `nobody` with the local (QEMU) stack `stack`, on a bridge in a network
    namespace of its own. On the way out any VM still running is killed and the namespace goes;
    the caller runs `pulumi destroy` itself (that is what tests check)."""
    served, sha256 = release
    project = Project(directory / "project", toolchain, user=NOBODY)
    vms = project.directory / ".local" / "vms"
    project.init_stack(stack, local_stack_config(
        members=members, state_dir=vms, image_dir=image_for_other_users(image, directory),
        release_sha256=sha256, bridge="br0", gateway=str(QEMU_SUBNET.network_address + 1),
        vmBootTimeoutSeconds=1200, **(extra or {})))
    bridge = BridgeNamespace(QEMU_SUBNET)
    bridge_token = cleanup.register(f"bridge namespace {bridge.name}", bridge.close)

    def kill_vms() -> None:
        # Each VM's state directory is named after the VM (components/vm_spec.py).
        for state in vms.iterdir() if vms.is_dir() else []:
            if state.is_dir():
                kill_vm(state, state.name)

    vms_token = cleanup.register("the engine stack's VMs", kill_vms)
    server = subprocess.Popen(["ip", "netns", "exec", bridge.name,
                               *http_server_argv(served, bridge.gateway)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_token = cleanup.register(f"HTTP server {server.pid}", server.kill)
    helper, tun = setuid_bridge_helper(directory)
    wrapper = [*bridge.prefix(), "sh", "-c",
               f'mount --bind "$1" {BRIDGE_HELPER} && mount --bind "$2" {TUN_DEVICE} && shift 2 '
               '&& exec "$@"', "sh", str(helper), str(tun)]
    try:
        yield LocalEngineStack(project=project, stack=stack, wrapper=wrapper,
                               namespace=bridge.name, vms=vms)
    finally:
        cleanup.run(vms_token)
        cleanup.run(server_token)
        server.wait(timeout=10)
        cleanup.run(bridge_token)


def setuid_bridge_helper(directory: Path) -> tuple[Path, Path]:
    """A setuid copy of QEMU's bridge helper and a /dev/net/tun node every user may open, to
    be bound over the real ones only inside the test's mount namespace: what
    machines/qemu/setup-network and udev (0666 tun) give a user's machine for good, so that
    `pulumi up` runs unprivileged as the README has users run it."""
    helper = directory / "qemu-bridge-helper"
    shutil.copy2(BRIDGE_HELPER, helper)
    helper.chmod(0o4755)
    tun = directory / "tun"
    device = os.stat(TUN_DEVICE).st_rdev
    os.mknod(tun, 0o666 | stat.S_IFCHR, device)
    tun.chmod(0o666)
    return helper, tun


def image_for_other_users(image: Path, directory: Path) -> Path:
    """The session's base image, where an unprivileged user can read it (hard links)."""
    target = directory / "image"
    target.mkdir()
    for path in image.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    target.chmod(0o755)
    return target


def planned_updates(local: LocalEngineStack) -> list[str]:
    """The names of the resources a `pulumi preview` would update, in the plan's order (the
    human-readable diff shortens long lines, so the plan is read as JSON)."""
    preview = local.pulumi("preview", "--json")
    steps = json.loads(preview.stdout).get("steps", [])
    return [step["urn"].rsplit("::", 1)[1] for step in steps if step["op"] == "update"]


@dataclass
class OutputsClient:
    """A client on the host side set up only from the stack's outputs, as kube-apiserver
    would be: `etcd_servers`, the CA and the apiserver client certificate and key (0600), plus a
    hosts file for the member names (the host resolves none); run inside the members' network
    namespace."""

    outputs: dict[str, Any]
    namespace: str
    files: Path

    def __post_init__(self) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        self.hosts = hosts_file(self.files / "hosts", {
            member["fqdn"]: member["private_ipv4"] for member in self.outputs["members"]})
        (self.files / "ca.pem").write_text(self.outputs["ca_pem"])
        (self.files / "client.pem").write_text(self.outputs["apiserver_client_cert_pem"])
        key = self.files / "client-key.pem"
        key.touch(mode=0o600)
        key.write_text(self.outputs["apiserver_client_key_pem"])
        self.etcdctl = str(realcheck.etcd_binary("3.5", "etcdctl"))

    def run(self, argv: Sequence[str], **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(realcheck.in_netns(self.namespace, argv, hosts_file=self.hosts),
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})

    def apiserver(self, *args: str) -> subprocess.CompletedProcess[str]:
        files = self.files
        return self.run([self.etcdctl, f"--endpoints={self.outputs['etcd_servers']}",
                         f"--cacert={files / 'ca.pem'}", f"--cert={files / 'client.pem'}",
                         f"--key={files / 'client-key.pem'}", *args])

    def wait_healthy(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """etcd starts with --no-block: `create` done does not mean the cluster has formed."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.apiserver("endpoint", "health", "--cluster")
            if health.returncode == 0 or time.monotonic() > deadline:
                return health
            time.sleep(2)


@contextlib.contextmanager
def continuous_writer(client: OutputsClient, prefix: str) -> Iterator[Path]:
    """A client putting `<prefix><i>` every 50 ms through etcd_servers for as long as the block
    runs; yields the file that lists each acknowledged i."""
    files = client.files
    acknowledged = files / f"acknowledged{prefix.replace('/', '-')}"
    writer = subprocess.Popen(realcheck.in_netns(client.namespace, [
        "sh", "-c", 'i=0; while :; do "$1" --endpoints="$2" --cacert="$3" --cert="$4" --key="$5" '
        '--command-timeout=5s put "$6$i" "$i" >/dev/null 2>&1 && echo "$i"; i=$((i+1)); '
        'sleep 0.05; done', "sh", client.etcdctl, client.outputs["etcd_servers"],
        str(files / "ca.pem"), str(files / "client.pem"), str(files / "client-key.pem"), prefix],
        hosts_file=client.hosts), stdout=acknowledged.open("w"), stderr=subprocess.DEVNULL)
    try:
        yield acknowledged
    finally:
        realcheck.stop(writer)


def check_rollout_lost_nothing(client: OutputsClient, prefix: str, acknowledged: Path) -> None:
    """The cluster healthy, and every write the continuous writer saw acknowledged is there."""
    health = client.wait_healthy()
    assert health.returncode == 0, health.stdout + health.stderr
    written = {int(line) for line in acknowledged.read_text().split()}
    assert len(written) > 20, f"the writer barely wrote during the rollout: {len(written)}"
    keys = client.apiserver("get", prefix, "--prefix", "--keys-only")
    stored = {int(key.removeprefix(prefix)) for key in keys.stdout.split()}
    assert written - stored == set(), f"acknowledged writes lost: {sorted(written - stored)[:10]}"
