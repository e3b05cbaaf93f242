"""The local backends (QEMU, VirtualBox) under Pulumi mocks: one pulumi-command Command per
member, static addresses in certificates, /etc/hosts and the seed, and no cloud resources.

The scripts those commands run are tested for real in test_qemu_scripts.py,
test_virtualbox_scripts.py and the end-to-end tests.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import realcheck
import yaml
from cloud_config import write_file_contents
from cryptography import x509
from program import COMMAND, DNS_RECORD, DROPLET, ProgramError, ProgramRun

from model import local_network
from model.settings import PROJECT, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
LOCAL_STACK = {key.removeprefix(f"{PROJECT}:"): value for key, value in
               yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"].items()}
# The local stack as it is, without the base configuration's Cloudflare zone.
QEMU: dict[str, Any] = {**LOCAL_STACK, "cloudflareZoneId": None}
VIRTUALBOX: dict[str, Any] = {**QEMU, "backend": "virtualbox"}


@pytest.fixture(scope="module")
def qemu(program: Any) -> ProgramRun:
    result: ProgramRun = program(QEMU, "local")
    return result


@pytest.fixture(scope="module")
def virtualbox(program: Any) -> ProgramRun:
    result: ProgramRun = program(VIRTUALBOX, "local")
    return result


def commands(run: ProgramRun) -> dict[str, Any]:
    return run.named(COMMAND)


def environment(run: ProgramRun, member: str) -> dict[str, str]:
    env: dict[str, str] = commands(run)[member].inputs["environment"]
    return env


def test_the_local_stack_file_is_a_valid_three_member_qemu_cluster() -> None:
    settings = load_settings(LOCAL_STACK, "local")
    assert (settings.backend, settings.member_count, settings.is_local) == ("qemu", 3, True)
    assert not settings.uses_cloudflare


@pytest.mark.parametrize("backend", ["qemu", "virtualbox"])
def test_a_local_stack_creates_one_command_per_member_and_nothing_in_the_cloud(program: Any,
                                                                             backend: str) -> None:
    run: ProgramRun = program({**QEMU, "backend": backend}, "local")
    assert sorted(commands(run)) == ["etcd-1", "etcd-2", "etcd-3"]
    providers = {reg.type.split(":")[0] for reg in run.custom_resources}
    assert providers == {"tls", "command"}
    assert not run.of_type(DROPLET) and not run.of_type(DNS_RECORD)


@pytest.mark.parametrize("backend", ["qemu", "virtualbox"])
def test_commands_run_the_backend_scripts_with_sh_from_the_project(program: Any, backend: str) -> None:
    run: ProgramRun = program({**QEMU, "backend": backend}, "local")
    for command in commands(run).values():
        assert command.inputs["interpreter"] == ["/bin/sh"]
        assert command.inputs["create"] == f"machines/{backend}/create-vm"
        assert command.inputs["delete"] == f"machines/{backend}/delete-vm"
        assert "dir" not in command.inputs  # the working directory of `pulumi up`: the project
        for script in (command.inputs["create"], command.inputs["delete"]):
            assert os.access(ROOT / script, os.X_OK), script


def test_the_user_data_goes_on_stdin_as_a_secret_and_nowhere_else(qemu: ProgramRun) -> None:
    for name, command in commands(qemu).items():
        assert "stdin" in command.secret_inputs
        assert command.inputs["stdin"].startswith("#cloud-config\n")
        assert "environment" not in command.secret_inputs
        plain = repr({key: value for key, value in command.inputs.items() if key != "stdin"})
        assert "PRIVATE KEY" not in plain, name


def test_no_input_change_reruns_create_on_a_running_vm(qemu: ProgramRun) -> None:
    # pulumi-command runs `create` again when an input changes and no `update` is given.
    for command in commands(qemu).values():
        assert set(command.ignore_changes) >= {"create", "delete", "environment", "stdin"}
        assert "update" not in command.inputs


def test_protect_members_protects_the_vms(program: Any) -> None:
    assert not any(cmd.protect for cmd in commands(program(QEMU, "local")).values())
    protected = program({**QEMU, "protectMembers": True}, "local")
    assert all(cmd.protect for cmd in commands(protected).values())


def test_the_environment_is_what_machines_readme_documents(qemu: ProgramRun,
                                                          virtualbox: ProgramRun) -> None:
    readme = (ROOT / "machines" / "README.md").read_text()
    documented = set(re.findall(r"`(ETCD_VM_[A-Z_]+)`", readme))
    used = set(environment(qemu, "etcd-1")) | set(environment(virtualbox, "etcd-1"))
    assert used == documented


def test_members_get_static_addresses_from_the_local_network(qemu: ProgramRun) -> None:
    members = qemu.output("members")
    assert [member["private_ipv4"] for member in members] == [
        "192.168.56.11", "192.168.56.12", "192.168.56.13"]
    assert all(member["public_ipv4"] is None for member in members)
    assert qemu.output("backend") == "qemu"


def test_vm_names_and_macs_are_unique_per_member_and_per_stack(program: Any) -> None:
    local = program(QEMU, "local")
    other = program(QEMU, "local2")
    names = [environment(run, m)["ETCD_VM_NAME"] for run in (local, other) for m in commands(run)]
    macs = [environment(run, m)["ETCD_VM_MAC"] for run in (local, other) for m in commands(run)]
    assert len(set(names)) == len(set(macs)) == 6
    assert all(re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", mac) for mac in macs)


def test_network_config_gives_the_static_address_to_the_nic_with_the_vms_mac(qemu: ProgramRun) -> None:
    env = environment(qemu, "etcd-2")
    config = yaml.safe_load(env["ETCD_VM_NETWORK_CONFIG"])
    (nic,) = config["ethernets"].values()
    assert config["version"] == 2
    assert nic["match"] == {"macaddress": env["ETCD_VM_MAC"]}
    assert nic["addresses"] == ["192.168.56.12/24"]
    assert nic["routes"] == [{"to": "0.0.0.0/0", "via": "192.168.56.1"}]
    assert nic["nameservers"] == {"addresses": ["1.1.1.1", "9.9.9.9"]}
    assert yaml.safe_load(env["ETCD_VM_META_DATA"]) == {
        "instance-id": env["ETCD_VM_NAME"], "local-hostname": "etcd-2.local.etcd.internal"}


def test_virtualbox_vms_route_out_through_a_dhcp_nat_nic(virtualbox: ProgramRun) -> None:
    env = environment(virtualbox, "etcd-1")
    nics = yaml.safe_load(env["ETCD_VM_NETWORK_CONFIG"])["ethernets"]
    static, nat = nics["etcd0"], nics["uplink1"]
    assert "routes" not in static
    assert nat == {"match": {"macaddress": env["ETCD_VM_NAT_MAC"]}, "set-name": "uplink1",
                   "dhcp4": True}
    assert env["ETCD_VM_NAT_MAC"] != env["ETCD_VM_MAC"]


def test_cloud_init_renders_the_network_config_to_a_static_networkd_interface(qemu: ProgramRun,
                                                                               tmp_path: Path) -> None:
    """cloud-init's own renderer (net-convert) turns the network-config into systemd-networkd."""
    if not realcheck.SYSTEM_CLOUD_INIT.exists():
        pytest.skip("/usr/bin/cloud-init not found: install the Debian package `cloud-init`")
    env = environment(qemu, "etcd-1")
    source = tmp_path / "network-config"
    source.write_text(env["ETCD_VM_NETWORK_CONFIG"])
    out = tmp_path / "out"
    subprocess.run([str(realcheck.SYSTEM_CLOUD_INIT), "devel", "net-convert", "-p", str(source),
                    "-k", "yaml", "-d", str(out), "-D", "debian", "-O", "networkd"],
                   check=True, capture_output=True, text=True, timeout=120)
    (network,) = (out / "etc/systemd/network").glob("*.network")
    text = network.read_text()
    assert "Address=192.168.56.11/24" in text
    assert "Gateway=192.168.56.1" in text
    assert f"MACAddress={env['ETCD_VM_MAC']}" in text or "Name=etcd0" in text


def test_certificates_carry_the_static_address_as_an_ip_san(qemu: ProgramRun) -> None:
    certificates = qemu.certificates
    for index in (1, 2, 3):
        address = ipaddress.ip_address(f"192.168.56.{10 + index}")
        for kind in ("server", "peer"):
            sans = certificates[f"etcd-{index}-{kind}-cert"].extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
            assert address in sans.get_values_for_type(x509.IPAddress), (index, kind)
            assert f"etcd-{index}.local.etcd.internal" in sans.get_values_for_type(x509.DNSName)


def test_every_member_writes_the_names_of_every_member_the_cluster_can_have_to_etc_hosts(
        qemu: ProgramRun) -> None:
    # Up to 7: a member that joins later resolves on the machines created before it.
    for user_data in qemu.user_data.values():
        hosts = write_file_contents(user_data)["/etc/hosts"]
        assert "127.0.0.1 localhost\n" in hosts
        for index in range(1, 8):
            assert f"192.168.56.{10 + index} etcd-{index}.local.etcd.internal etcd-{index}\n" in hosts
        # cloud-init would otherwise rewrite /etc/hosts from its template at the next boot.
        assert yaml.safe_load(user_data)["manage_etc_hosts"] is False


def test_droplet_user_data_leaves_etc_hosts_to_the_image(program: Any) -> None:
    for user_data in program().user_data.values():
        assert "/etc/hosts" not in write_file_contents(user_data)
        assert "manage_etc_hosts" not in yaml.safe_load(user_data)


def test_an_offline_image_installs_no_packages_at_boot(qemu: ProgramRun, program: Any) -> None:
    for user_data in qemu.user_data.values():
        document = yaml.safe_load(user_data)
        assert document["package_update"] is False and "packages" not in document
    online = program({**QEMU, "installPackages": True}, "local")
    for user_data in online.user_data.values():
        assert yaml.safe_load(user_data)["packages"] == ["ca-certificates", "curl", "nftables", "openssl"]


@pytest.mark.parametrize(("backend", "device"), [
    ("qemu", "/dev/disk/by-id/virtio-etcd-data"),
    ("virtualbox", "/dev/disk/by-id/ata-VBOX_HARDDISK_etcd-data"),
])
def test_the_data_disk_is_mounted_from_where_the_backend_attaches_it(program: Any, backend: str,
                                                                    device: str) -> None:
    run = program({**QEMU, "backend": backend}, "local")
    for user_data in run.user_data.values():
        prepare = [step for step in yaml.safe_load(user_data)["runcmd"]
                   if step[0].endswith("etcd-prepare-data")]
        assert prepare[0][1] == device


def test_local_user_data_passes_cloud_init_schema(qemu: ProgramRun, virtualbox: ProgramRun,
                                                  tmp_path: Path) -> None:
    for run in (qemu, virtualbox):
        for name, user_data in run.user_data.items():
            path = tmp_path / f"{run.output('backend')}-{name}.yaml"
            path.write_text(user_data)
            result = realcheck.cloud_init_schema(path)
            assert result.returncode == 0 and "Valid cloud-config" in result.stdout, result.stderr


def test_a_cloudflare_zone_id_adds_records_for_the_static_addresses(program: Any) -> None:
    run = program({**QEMU, "cloudflareZoneId": "0123456789abcdef0123456789abcdef"}, "local")
    records = {reg.inputs["name"]: reg.inputs["content"] for reg in run.of_type(DNS_RECORD)
               if reg.inputs["type"] == "A"}
    assert records == {f"etcd-{i}.local.etcd.internal": f"192.168.56.{10 + i}" for i in (1, 2, 3)}


def test_digitalocean_still_requires_the_cloudflare_zone_id(program: Any) -> None:
    with pytest.raises(ProgramError) as failure:
        program({"cloudflareZoneId": None})
    assert isinstance(failure.value.error, SettingsError)
    assert "cloudflareZoneId = None: is required" in str(failure.value.error)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("backend", "docker", "must be one of digitalocean, qemu, virtualbox"),
    ("localNetworkCidr", "192.168.56.0/28", "is too small"),
    ("localNetworkCidr", "8.8.8.0/24", "must be a private IPv4 network"),
    ("localNetworkCidr", "192.168.56.1/24", "is not a valid CIDR"),
    ("localNameservers", ["dns.example"], "must be an IP address"),
    ("vmMemoryMib", 256, "must be between 512 and 262144"),
    ("vmCpus", 0, "must be between 1 and 64"),
    ("qemuBridge", "a-very-long-bridge0", "longer than the 15 characters"),
    ("qemuAccel", "hvf", "must be one of auto, kvm, tcg"),
    ("virtualboxBaseVm", "my vm", "must be a name of letters"),
])
def test_bad_local_settings_name_the_setting_and_the_fix(key: str, value: Any, message: str) -> None:
    with pytest.raises(SettingsError) as failure:
        load_settings({**LOCAL_STACK, key: value}, "local")
    problems = failure.value.problems
    assert any(problem.startswith(f"{PROJECT}:{key} = ") and message in problem
               for problem in problems), problems


def test_member_addresses_leave_room_for_the_host_below_them() -> None:
    assert local_network.gateway_ipv4("10.9.8.0/24") == "10.9.8.1"
    assert [local_network.member_ipv4("10.9.8.0/27", i) for i in (1, 7)] == ["10.9.8.11", "10.9.8.17"]
