"""machines/virtualbox/create-vm and delete-vm, run as pulumi-command runs them, against the
stand-in VBoxManage of tests/guests/fake_vboxmanage (VirtualBox itself cannot run here).

The fake keeps VirtualBox's state (registered VMs, media, run state), records every call and
fails like the real one on bad arguments; its guest writes cloud-init's final message to the
serial console file only when the NoCloud seed ISO is attached. The first tests check the fake
itself, so that the scripts passing against it means something.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from guests.virtualbox import (
    BASE_VM,
    CONTROLLER,
    CREATE,
    DELETE,
    FAKE_DIR,
    ROOT,
    FakeVirtualBox,
    iso_files,
    iso_tool_missing,
    iso_volume_id,
    run_script,
    vm_environment,
)

NAME = "etcd-test-abc123-etcd-1"
USER_DATA = "#cloud-config\nwrite_files:\n- path: /etc/etcd/pki/peer.key\n  content: 'S3CRET-PEER-KEY'\n"
SECRET = "S3CRET-PEER-KEY"
SCRIPTS = [ROOT / CREATE, ROOT / DELETE, ROOT / "machines/virtualbox/vbox.sh"]


@pytest.fixture
def vbox(tmp_path: Path) -> FakeVirtualBox:
    fake = FakeVirtualBox(tmp_path / "virtualbox")
    fake.register_base_vm()
    return fake


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "vms" / NAME


def env_for(vbox: FakeVirtualBox, state_dir: Path | str, fake: dict[str, str] | None = None,
            **overrides: str) -> dict[str, str]:
    return vbox.environment({**vm_environment(state_dir, NAME, **overrides), **(fake or {})})


def create(vbox: FakeVirtualBox, state_dir: Path | str, fake: dict[str, str] | None = None,
           stdin: str = USER_DATA, **overrides: str) -> subprocess.CompletedProcess[str]:
    return run_script(CREATE, env_for(vbox, state_dir, fake, **overrides), stdin)


def delete(vbox: FakeVirtualBox, state_dir: Path | str,
           fake: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_script(DELETE, env_for(vbox, state_dir, fake))


def created(vbox: FakeVirtualBox, state_dir: Path) -> None:
    result = create(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    vbox.clear_calls()


def assert_nothing_left_in_virtualbox(vbox: FakeVirtualBox, state_dir: Path) -> None:
    assert vbox.registered_vms() == [BASE_VM]
    leftovers = [path for path in vbox.media("hdds") + vbox.media("dvds")
                 if path.startswith(str(state_dir))]
    assert leftovers == []


# --- the fake ------------------------------------------------------------------------------------

def test_fake_rejects_a_misspelled_option_as_a_syntax_error(vbox: FakeVirtualBox) -> None:
    result = vbox.vboxmanage("modifyvm", BASE_VM, "--macadress1", "525400ABCDEF", check=False)
    assert result.returncode == 2
    assert "Unknown option: --macadress1" in result.stderr


def test_fake_rejects_an_unknown_subcommand_and_a_missing_value(vbox: FakeVirtualBox) -> None:
    unknown = vbox.vboxmanage("clonehd-vm", BASE_VM, check=False)
    assert unknown.returncode == 2
    assert "Invalid command 'clonehd-vm'" in unknown.stderr
    missing = vbox.vboxmanage("modifyvm", BASE_VM, "--cpus", check=False)
    assert missing.returncode == 2
    assert "Missing the argument for option '--cpus'" in missing.stderr


def test_fake_reports_a_missing_vm_as_virtualbox_does(vbox: FakeVirtualBox) -> None:
    result = vbox.vboxmanage("showvminfo", "no-such-vm", "--machinereadable", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "VBoxManage: error: Could not find a registered machine named 'no-such-vm'")


def test_fake_refuses_to_change_or_unregister_a_running_vm(vbox: FakeVirtualBox,
                                                           tmp_path: Path) -> None:
    vbox.vboxmanage("startvm", BASE_VM, "--type", "headless")
    modify = vbox.vboxmanage("modifyvm", BASE_VM, "--cpus", "2", check=False)
    assert modify.returncode == 1
    assert "is already locked for a session" in modify.stderr
    again = vbox.vboxmanage("startvm", BASE_VM, "--type", "headless", check=False)
    assert again.returncode == 1
    unregister = vbox.vboxmanage("unregistervm", BASE_VM, "--delete", check=False)
    assert unregister.returncode == 1
    assert f"Cannot unregister the machine '{BASE_VM}' while it is locked" in unregister.stderr


def test_fake_refuses_an_unknown_controller_and_a_port_out_of_range(vbox: FakeVirtualBox,
                                                                    tmp_path: Path) -> None:
    disk = tmp_path / "disk.vdi"
    vbox.vboxmanage("createmedium", "disk", "--filename", str(disk), "--size", "10")
    wrong = vbox.vboxmanage("storageattach", BASE_VM, "--storagectl", "SATA Controller",
                            "--port", "1", "--device", "0", "--type", "hdd", "--medium", str(disk),
                            check=False)
    assert wrong.returncode == 1
    assert "Could not find a controller named 'SATA Controller'" in wrong.stderr
    out_of_range = vbox.vboxmanage("storageattach", BASE_VM, "--storagectl", CONTROLLER,
                                   "--port", "30", "--device", "0", "--type", "hdd",
                                   "--medium", str(disk), check=False)
    assert out_of_range.returncode == 1
    assert "out of range" in out_of_range.stderr


def test_fake_refuses_to_clone_onto_an_existing_settings_file(vbox: FakeVirtualBox,
                                                              tmp_path: Path) -> None:
    vbox.vboxmanage("clonevm", BASE_VM, "--name", "copy", "--register", "--basefolder",
                    str(tmp_path / "clones"))
    again = vbox.vboxmanage("clonevm", BASE_VM, "--name", "copy", "--register", "--basefolder",
                            str(tmp_path / "clones"), check=False)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_fake_guest_never_finishes_cloud_init_without_a_seed_iso(vbox: FakeVirtualBox,
                                                                 tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    vbox.vboxmanage("modifyvm", BASE_VM, "--uart1", "0x3F8", "4", "--uartmode1", "file",
                    str(console))
    vbox.vboxmanage("startvm", BASE_VM, "--type", "headless")
    assert "Linux version" in console.read_text()
    assert "finished at" not in console.read_text()


# --- the scripts, statically ---------------------------------------------------------------------

@pytest.mark.parametrize("path", SCRIPTS[:2], ids=lambda path: path.name)
def test_scripts_are_executable_posix_sh_that_stop_on_errors(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "set -eu" in lines
    assert os.access(path, os.X_OK)


def test_shellcheck_finds_nothing_in_the_virtualbox_scripts() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_fake_is_executable_python() -> None:
    fake = FAKE_DIR / "VBoxManage"
    assert fake.read_text().startswith("#!/usr/bin/env python3\n")
    assert os.access(fake, os.X_OK)


# --- create --------------------------------------------------------------------------------------

def test_create_clones_configures_attaches_and_starts_in_that_order(vbox: FakeVirtualBox,
                                                                   state_dir: Path) -> None:
    result = create(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    state = str(state_dir)
    assert vbox.changing_calls() == [
        ["clonevm", BASE_VM, "--name", NAME, "--register", "--mode", "machine",
         "--basefolder", state],
        ["modifyvm", NAME, "--cpus", "2", "--memory", "2048",
         "--nic1", "hostonly", "--hostonlyadapter1", "vboxnet0", "--macaddress1", "525400ABCDEF",
         "--nic2", "nat", "--macaddress2", "525400123456",
         "--uart1", "0x3F8", "4", "--uartmode1", "file", f"{state}/console.log"],
        ["createmedium", "disk", "--filename", f"{state}/data.vdi", "--size", "20480",
         "--format", "VDI"],
        ["storageattach", NAME, "--storagectl", CONTROLLER, "--port", "1", "--device", "0",
         "--type", "hdd", "--medium", f"{state}/data.vdi"],
        ["setextradata", NAME, "VBoxInternal/Devices/ahci/0/Config/Port1/SerialNumber",
         "etcd-data"],
        ["storageattach", NAME, "--storagectl", CONTROLLER, "--port", "2", "--device", "0",
         "--type", "dvddrive", "--medium", f"{state}/seed/seed.iso"],
        ["startvm", NAME, "--type", "headless"],
    ]


def test_create_returns_with_the_vm_running_and_cloud_init_finished(vbox: FakeVirtualBox,
                                                                   state_dir: Path) -> None:
    result = create(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"cloud-init finished on {NAME}" in result.stderr
    info = vbox.vm_info(NAME)
    assert info["VMState"] == "running"
    assert info["CfgFile"] == f"{state_dir}/{NAME}/{NAME}.vbox"
    console = (state_dir / "console.log").read_text()
    assert "Cloud-init v. 22.4.2 finished at" in console
    # The guest sees the data disk where the program's user-data looks for it.
    assert "disk: /dev/disk/by-id/ata-VBOX_HARDDISK_etcd-data" in console


def test_create_passes_absolute_paths_to_virtualbox_for_a_relative_state_dir(
        vbox: FakeVirtualBox, state_dir: Path) -> None:
    relative = os.path.relpath(state_dir, ROOT)
    assert not relative.startswith("/")
    result = create(vbox, relative)
    assert result.returncode == 0, result.stderr
    absolute = str(state_dir.resolve())
    paths = [argument for call in vbox.changing_calls() for argument in call
             if "/" in argument and not argument.startswith("VBoxInternal/")]
    assert paths
    assert all(path.startswith(absolute) for path in paths), paths


def test_create_writes_a_cidata_seed_iso_with_the_three_documents(vbox: FakeVirtualBox,
                                                                  state_dir: Path) -> None:
    missing = iso_tool_missing()
    if missing:
        pytest.skip(missing)
    result = create(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    iso = state_dir / "seed" / "seed.iso"
    assert iso_volume_id(iso) == "cidata"
    environment = vm_environment(state_dir, NAME)
    assert iso_files(iso) == {
        "user-data": USER_DATA,
        "meta-data": environment["ETCD_VM_META_DATA"] + "\n",
        "network-config": environment["ETCD_VM_NETWORK_CONFIG"] + "\n",
    }


def test_create_keeps_the_state_dir_and_the_seed_owner_only(vbox: FakeVirtualBox,
                                                            state_dir: Path) -> None:
    result = create(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    seed = state_dir / "seed"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o700
    for name in ("user-data", "meta-data", "network-config", "seed.iso"):
        assert stat.S_IMODE((seed / name).stat().st_mode) == 0o600, name


def test_create_and_delete_never_print_the_user_data(vbox: FakeVirtualBox,
                                                     state_dir: Path) -> None:
    created_run = create(vbox, state_dir)
    deleted_run = delete(vbox, state_dir)
    assert created_run.returncode == 0 and deleted_run.returncode == 0
    for output in (created_run.stdout, created_run.stderr, deleted_run.stdout, deleted_run.stderr):
        assert SECRET not in output


def test_create_of_a_slow_guest_waits_for_cloud_init(vbox: FakeVirtualBox,
                                                     state_dir: Path) -> None:
    result = create(vbox, state_dir, {"FAKE_VBOX_BOOT_SECONDS": "3"})
    assert result.returncode == 0, result.stderr
    assert "finished at" in (state_dir / "console.log").read_text()


@pytest.mark.parametrize("variable", ["ETCD_VM_NAME", "ETCD_VM_BASE_VM", "ETCD_VM_NAT_MAC",
                                      "ETCD_VM_STORAGE_CONTROLLER", "ETCD_VM_HOSTONLY_ADAPTER"])
def test_create_names_a_missing_variable_and_touches_nothing(vbox: FakeVirtualBox,
                                                             state_dir: Path,
                                                             variable: str) -> None:
    env = env_for(vbox, state_dir)
    del env[variable]
    result = run_script(CREATE, env, USER_DATA)
    assert result.returncode != 0
    assert f"environment variable {variable} is not set" in result.stderr
    assert vbox.calls() == []
    assert not state_dir.exists()


def test_create_refuses_a_mac_address_virtualbox_cannot_take(vbox: FakeVirtualBox,
                                                             state_dir: Path) -> None:
    result = create(vbox, state_dir, ETCD_VM_MAC="52-54-00-ab-cd")
    assert result.returncode != 0
    assert "'52-54-00-ab-cd' is not a MAC address" in result.stderr
    assert vbox.changing_calls() == []


def test_create_with_a_wrong_storage_controller_leaves_no_vm_behind(vbox: FakeVirtualBox,
                                                                    state_dir: Path) -> None:
    result = create(vbox, state_dir, ETCD_VM_STORAGE_CONTROLLER="SATA Controller")
    assert result.returncode != 0
    assert "Could not find a controller named 'SATA Controller'" in result.stderr
    assert f"create of {NAME} failed" in result.stderr
    assert_nothing_left_in_virtualbox(vbox, state_dir)
    # The seed (private keys) and the disks are gone; only a console log may stay.
    assert {path.name for path in state_dir.iterdir()} <= {"console.log"}


@pytest.mark.parametrize("failing", ["modifyvm", "createmedium", "setextradata", "startvm"])
def test_create_undoes_the_clone_when_a_later_step_fails(vbox: FakeVirtualBox, state_dir: Path,
                                                         failing: str) -> None:
    result = create(vbox, state_dir, {"FAKE_VBOX_FAIL": failing})
    assert result.returncode != 0
    assert f"{failing} failed" in result.stderr
    assert ["unregistervm", NAME, "--delete"] in vbox.changing_calls()
    assert_nothing_left_in_virtualbox(vbox, state_dir)
    assert {path.name for path in state_dir.iterdir()} <= {"console.log"}


def test_create_on_a_missing_host_only_adapter_fails_at_start_and_cleans_up(
        vbox: FakeVirtualBox, state_dir: Path) -> None:
    result = create(vbox, state_dir, ETCD_VM_HOSTONLY_ADAPTER="vboxnet7")
    assert result.returncode != 0
    assert "Nonexistent host networking interface, name 'vboxnet7'" in result.stderr
    assert_nothing_left_in_virtualbox(vbox, state_dir)


def test_create_times_out_cleanly_when_the_guest_never_finishes(vbox: FakeVirtualBox,
                                                                state_dir: Path) -> None:
    result = create(vbox, state_dir, {"FAKE_VBOX_GUEST": "hang"}, ETCD_VM_BOOT_TIMEOUT="3")
    assert result.returncode != 0
    assert "cloud-init did not finish within 3 s" in result.stderr
    # The end of the console log is shown, and the log is kept for diagnosis.
    assert "no datasource found" in result.stderr
    assert (state_dir / "console.log").exists()
    calls = vbox.changing_calls()
    assert calls.index(["controlvm", NAME, "poweroff"]) < calls.index(
        ["unregistervm", NAME, "--delete"])
    assert_nothing_left_in_virtualbox(vbox, state_dir)


def test_create_fails_without_waiting_out_the_timeout_when_the_vm_stops(vbox: FakeVirtualBox,
                                                                  state_dir: Path) -> None:
    result = create(vbox, state_dir, {"FAKE_VBOX_GUEST": "crash"}, ETCD_VM_BOOT_TIMEOUT="600")
    assert result.returncode != 0
    assert "the VM stopped (state: aborted) before cloud-init finished" in result.stderr
    assert "Kernel panic" in result.stderr
    assert_nothing_left_in_virtualbox(vbox, state_dir)


def test_create_refuses_a_vm_that_already_exists_and_leaves_it_alone(vbox: FakeVirtualBox,
                                                                     state_dir: Path) -> None:
    created(vbox, state_dir)
    result = create(vbox, state_dir)
    assert result.returncode != 0
    assert f"a VirtualBox VM named {NAME} is already registered" in result.stderr
    assert vbox.changing_calls() == []
    assert vbox.vm_info(NAME)["VMState"] == "running"
    assert (state_dir / "seed" / "seed.iso").exists()


def test_create_after_a_failed_create_starts_afresh(vbox: FakeVirtualBox, state_dir: Path) -> None:
    failed = create(vbox, state_dir, {"FAKE_VBOX_GUEST": "hang"}, ETCD_VM_BOOT_TIMEOUT="1")
    assert failed.returncode != 0
    result = create(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    assert vbox.vm_info(NAME)["VMState"] == "running"


# --- delete --------------------------------------------------------------------------------------

def test_delete_removes_the_vm_its_media_and_the_state_dir(vbox: FakeVirtualBox,
                                                           state_dir: Path) -> None:
    created(vbox, state_dir)
    result = delete(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert_nothing_left_in_virtualbox(vbox, state_dir)
    assert not state_dir.exists()
    # The base VM and its disk are untouched.
    assert vbox.media("hdds") == [str(vbox.state_dir / "base" / BASE_VM / f"{BASE_VM}.vdi")]


def test_delete_powers_a_running_vm_off_and_waits_for_its_session(vbox: FakeVirtualBox,
                                                                  state_dir: Path) -> None:
    created(vbox, state_dir)
    # VirtualBox unlocks the session a moment after poweroff returns.
    result = delete(vbox, state_dir, {"FAKE_VBOX_UNLOCK_LAG": "2"})
    assert result.returncode == 0, result.stderr
    calls = vbox.changing_calls()
    assert calls[0] == ["controlvm", NAME, "poweroff"]
    assert calls.count(["unregistervm", NAME, "--delete"]) == 3
    assert NAME not in vbox.registered_vms()


def test_delete_of_a_powered_off_vm_does_not_try_to_power_it_off(vbox: FakeVirtualBox,
                                                                 state_dir: Path) -> None:
    created(vbox, state_dir)
    vbox.vboxmanage("controlvm", NAME, "poweroff")
    vbox.clear_calls()
    result = delete(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    assert ["controlvm", NAME, "poweroff"] not in vbox.changing_calls()
    assert_nothing_left_in_virtualbox(vbox, state_dir)


def test_delete_of_a_vm_that_does_not_exist_succeeds(vbox: FakeVirtualBox,
                                                     state_dir: Path) -> None:
    result = delete(vbox, state_dir)
    assert result.returncode == 0, result.stderr
    assert vbox.changing_calls() == []
    assert not state_dir.exists()


def test_delete_twice_succeeds(vbox: FakeVirtualBox, state_dir: Path) -> None:
    created(vbox, state_dir)
    assert delete(vbox, state_dir).returncode == 0
    again = delete(vbox, state_dir)
    assert again.returncode == 0, again.stderr


def test_delete_refuses_a_state_dir_holding_files_it_did_not_make(vbox: FakeVirtualBox,
                                                                  state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "precious.txt").write_text("not a VM file\n")
    result = delete(vbox, state_dir)
    assert result.returncode != 0
    assert "holds precious.txt" in result.stderr
    assert (state_dir / "precious.txt").exists()
