"""Running machines/virtualbox/create-vm and delete-vm the way pulumi-command does, against the
stand-in VBoxManage in fake_vboxmanage/ (VirtualBox itself cannot run here).

pulumi-command runs `/bin/sh machines/virtualbox/create-vm` in the project directory with the
member's user-data on stdin and the ETCD_VM_* variables of machines/README.md in the
environment; `run_script` does the same with the fake first on PATH. `FakeVirtualBox` owns the
fake's state directory: it registers a base VM the way a user would (createvm, storagectl,
createmedium, storageattach), reads back what the scripts left behind and the recorded calls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_DIR = Path(__file__).resolve().parent / "fake_vboxmanage"
CREATE = "machines/virtualbox/create-vm"
DELETE = "machines/virtualbox/delete-vm"
BASE_VM = "debian-12-cloud"
CONTROLLER = "SATA"
# What create changes in VirtualBox; the rest (showvminfo, list) only looks.
CHANGING = ("clonevm", "modifyvm", "createmedium", "storageattach", "setextradata", "startvm",
            "controlvm", "unregistervm", "closemedium")


@dataclass(frozen=True)
class FakeVirtualBox:
    """The fake's state (FAKE_VBOX_STATE) in `state_dir`."""

    state_dir: Path

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The process environment with the fake first on PATH; no ETCD_VM_* of the caller's."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("ETCD_VM_", "FAKE_VBOX_"))}
        env["PATH"] = f"{FAKE_DIR}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["FAKE_VBOX_STATE"] = str(self.state_dir)
        env.update(extra or {})
        return env

    def vboxmanage(self, *args: str, check: bool = True,
                   extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(FAKE_DIR / "VBoxManage"), *args], env=self.environment(extra),
                                capture_output=True, text=True, check=False, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"VBoxManage {' '.join(args)} failed: {result.stderr}")
        return result

    def register_base_vm(self, name: str = BASE_VM, controller: str = CONTROLLER) -> None:
        """A powered-off base VM with its system disk on port 0 of a SATA controller."""
        folder = self.state_dir / "base"
        folder.mkdir(parents=True, exist_ok=True)
        self.vboxmanage("createvm", "--name", name, "--ostype", "Debian_64", "--register",
                        "--basefolder", str(folder))
        self.vboxmanage("storagectl", name, "--name", controller, "--add", "sata",
                        "--controller", "IntelAhci", "--portcount", "1")
        disk = folder / name / f"{name}.vdi"
        self.vboxmanage("createmedium", "disk", "--filename", str(disk), "--size", "3072",
                        "--format", "VDI")
        self.vboxmanage("storageattach", name, "--storagectl", controller, "--port", "0",
                        "--device", "0", "--type", "hdd", "--medium", str(disk))
        self.clear_calls()

    def calls(self) -> list[list[str]]:
        path = self.state_dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def changing_calls(self) -> list[list[str]]:
        return [call for call in self.calls() if call and call[0] in CHANGING]

    def clear_calls(self) -> None:
        (self.state_dir / "calls.jsonl").unlink(missing_ok=True)

    def registered_vms(self) -> list[str]:
        lines = self.vboxmanage("list", "vms").stdout.splitlines()
        return [line.rsplit(" {", 1)[0].strip('"') for line in lines if line]

    def media(self, kind: str) -> list[str]:
        """Locations of the registered `hdds` or `dvds`."""
        lines = self.vboxmanage("list", kind).stdout.splitlines()
        return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Location:")]

    def vm_info(self, name: str) -> dict[str, str]:
        """showvminfo --machinereadable as key -> value (quotes removed)."""
        info = {}
        for line in self.vboxmanage("showvminfo", name, "--machinereadable").stdout.splitlines():
            key, _, value = line.partition("=")
            info[key.strip('"')] = value.strip('"')
        return info


def vm_environment(state_dir: Path | str, name: str = "etcd-test-abc123-etcd-1",
                   **overrides: str) -> dict[str, str]:
    """The ETCD_VM_* variables the program sets for one VirtualBox member (components/vm_spec.py)."""
    variables = {
        "ETCD_VM_NAME": name,
        "ETCD_VM_HOSTNAME": "etcd-1.test.etcd.internal",
        "ETCD_VM_STATE_DIR": str(state_dir),
        "ETCD_VM_CPUS": "2",
        "ETCD_VM_MEMORY_MIB": "2048",
        "ETCD_VM_DATA_DISK_GIB": "20",
        "ETCD_VM_MAC": "52:54:00:ab:cd:ef",
        "ETCD_VM_META_DATA": f"instance-id: {name}\nlocal-hostname: etcd-1.test.etcd.internal",
        "ETCD_VM_NETWORK_CONFIG": (
            "version: 2\nethernets:\n  members:\n    match:\n      macaddress: '52:54:00:ab:cd:ef'\n"
            "    addresses: [192.168.56.11/24]\n  nat:\n    match:\n"
            "      macaddress: '52:54:00:12:34:56'\n    dhcp4: true"),
        "ETCD_VM_BOOT_TIMEOUT": "30",
        "ETCD_VM_BASE_VM": BASE_VM,
        "ETCD_VM_HOSTONLY_ADAPTER": "vboxnet0",
        "ETCD_VM_STORAGE_CONTROLLER": CONTROLLER,
        "ETCD_VM_NAT_MAC": "52:54:00:12:34:56",
    }
    variables.update(overrides)
    return variables


def run_script(script: str, env: Mapping[str, str], stdin: str = "",
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`/bin/sh SCRIPT` in the project directory, as pulumi-command's local.Command runs it."""
    return subprocess.run(["/bin/sh", script], cwd=ROOT, env=dict(env), input=stdin,
                          capture_output=True, text=True, check=False, timeout=timeout)


def iso_tool_missing() -> str | None:
    """Why the seed ISO cannot be read back here, or None."""
    if shutil.which("isoinfo") is None:
        return "isoinfo (genisoimage) is not installed: cannot read the seed ISO back"
    return None


def iso_volume_id(iso: Path) -> str:
    output = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True,
                            check=True).stdout
    for line in output.splitlines():
        if line.startswith("Volume id:"):
            return line.split(":", 1)[1].strip()
    return ""


def iso_files(iso: Path) -> dict[str, str]:
    """The files in the ISO's root directory (Rock Ridge names) with their contents."""
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(iso)], capture_output=True,
                             text=True, check=True).stdout
    files = {}
    for path in listing.split():
        files[path.lstrip("/")] = subprocess.run(
            ["isoinfo", "-R", "-x", path, "-i", str(iso)], capture_output=True, text=True,
            check=True).stdout
    return files
