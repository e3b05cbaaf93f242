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
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from guests.commands import http_server_argv, local_stack_config
from guests.local_cluster import QEMU_SUBNET
from guests.qemu import BridgeNamespace, kill_vm
from realcluster import cleanup

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build-pulumi-toolchain"
PROJECT = "etcd-cluster"
# What `pulumi` reads of the program; .venv is linked or made, never copied.
PROGRAM_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "model", "components", "cloudinit",
                 "machines")
PASSPHRASE = "engine-tests-passphrase"
NOBODY = (65534, 65534)
BRIDGE_HELPER = Path("/usr/lib/qemu/qemu-bridge-helper")


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
                    "(needs Go and the Go module proxy; about 10-20 minutes once)")
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
    home: Path = field(init=False)
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.directory / ".pulumi-home"
        self.state = self.directory / ".state"
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in PROGRAM_FILES:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, self.directory / name,
                                ignore=shutil.ignore_patterns("__pycache__", ".local"))
            else:
                shutil.copy2(source, self.directory / name)
        self._link_venv()
        self.state.mkdir()
        self._install_plugins()
        if self.user is not None:
            for path in (self.directory, *self.directory.rglob("*")):
                if not path.is_symlink():
                    os.chown(path, *self.user)

    def _link_venv(self) -> None:
        """The repository's .venv, if the user `pulumi` runs as can use it; else a new one."""
        venv = REPO / ".venv"
        if self.user is None or _usable_by(venv / "bin" / "python", self.user):
            (self.directory / ".venv").symlink_to(venv)
            return
        subprocess.run(["python3", "-m", "venv", str(self.directory / ".venv")], check=True,
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
        done = subprocess.run([*wrapper, *argv], cwd=self.directory, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, input=stdin)
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
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


def _usable_by(python: Path, user: tuple[int, int]) -> bool:
    uid, gid = user
    done = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                           str(python), "-c", "import pulumi"], capture_output=True, timeout=120)
    return done.returncode == 0


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


@contextlib.contextmanager
def local_engine_stack(toolchain: Path, image: Path, release: tuple[Path, str], directory: Path,
                       stack: str, members: int = 3) -> Iterator[LocalEngineStack]:
    """A Project run as `nobody` with the local (QEMU) stack `stack`, on a bridge in a network
    namespace of its own. On the way out any VM still running is killed and the namespace goes;
    the caller runs `pulumi destroy` itself (that is what tests check)."""
    served, sha256 = release
    project = Project(directory / "project", toolchain, user=NOBODY)
    vms = project.directory / ".local" / "vms"
    project.init_stack(stack, local_stack_config(
        members=members, state_dir=vms, image_dir=image_for_other_users(image, directory),
        release_sha256=sha256, bridge="br0", gateway=str(QEMU_SUBNET.network_address + 1),
        vmBootTimeoutSeconds=1200))
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
    helper = setuid_bridge_helper(directory)
    wrapper = [*bridge.prefix(), "sh", "-c",
               f'mount --bind "$1" {BRIDGE_HELPER} && shift && exec "$@"', "sh", str(helper)]
    try:
        yield LocalEngineStack(project=project, stack=stack, wrapper=wrapper,
                               namespace=bridge.name, vms=vms)
    finally:
        cleanup.run(vms_token)
        cleanup.run(server_token)
        server.wait(timeout=10)
        cleanup.run(bridge_token)


def setuid_bridge_helper(directory: Path) -> Path:
    """A setuid copy of QEMU's bridge helper, bound over the real one only inside the test's
    mount namespace (what machines/qemu/setup-network does on a user's machine for good), so
    `pulumi up` runs unprivileged as the README has users run it."""
    copy = directory / "qemu-bridge-helper"
    shutil.copy2(BRIDGE_HELPER, copy)
    copy.chmod(0o4755)
    return copy


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
