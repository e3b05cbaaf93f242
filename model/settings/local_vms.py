"""Validation of the local backends' settings (qemu, virtualbox): network, VM sizes, names, paths.

Checked whatever the backend, so a typo never waits for the day the stack moves to local VMs.
"""

from __future__ import annotations

import ipaddress
import re

from model import local_network
from model.settings.parsing import Reader, check_range
from model.settings.types import QEMU_ACCELS, LocalVmSettings

# Names that end up in interface, VM and file names on the user's machine.
LOCAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_local_vms(c: Reader) -> LocalVmSettings:
    """The qemu/virtualbox settings; checked whatever the backend, so a typo never waits."""
    network_cidr = c.value("localNetworkCidr")
    try:
        network = ipaddress.ip_network(network_cidr, strict=True)
    except ValueError as error:
        c.problem("localNetworkCidr", network_cidr, f"is not a valid CIDR ({error}); write a "
                  "private network address with a prefix length, e.g. 192.168.56.0/24.")
    else:
        if network.version != 4 or not network.is_private:
            c.problem("localNetworkCidr", network_cidr, "must be a private IPv4 network "
                      "(10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), e.g. 192.168.56.0/24.")
        elif network.num_addresses < local_network.MIN_HOSTS + 1:
            c.problem("localNetworkCidr", network_cidr, "is too small: the gateway is host 1 and "
                      f"members are hosts {local_network.FIRST_MEMBER_HOST + 1}-"
                      f"{local_network.FIRST_MEMBER_HOST + local_network.MAX_MEMBERS} (events "
                      f"members {local_network.EVENTS_FIRST_MEMBER_HOST + 1}-"
                      f"{local_network.EVENTS_FIRST_MEMBER_HOST + local_network.MAX_MEMBERS}); use a /27 "
                      "or larger, e.g. 192.168.56.0/24.")
    nameservers = c.value("localNameservers")
    for nameserver in nameservers:
        try:
            ipaddress.ip_address(nameserver)
        except ValueError:
            c.problem("localNameservers", nameserver, "must be an IP address, e.g. 192.168.56.1.")
    cpus = c.value("vmCpus")
    check_range(c, "vmCpus", cpus, 1, 64, "virtual CPUs per member.")
    memory_mib = c.value("vmMemoryMib")
    check_range(c, "vmMemoryMib", memory_mib, 512, 262144,
                "etcd and the guest system need at least 512 MiB; 1024 or more is comfortable.")
    boot_timeout = c.value("vmBootTimeoutSeconds")
    check_range(c, "vmBootTimeoutSeconds", boot_timeout, 60, 7200,
                "software-emulated VMs take several minutes to finish cloud-init.")
    names = {key: c.value(key) for key in (
        "qemuBridge", "virtualboxBaseVm", "virtualboxHostOnlyAdapter", "virtualboxStorageController")}
    for key, value in names.items():
        if not LOCAL_NAME.match(value):
            c.problem(key, value, "must be a name of letters, digits, '.', '_' and '-' (at most "
                      "63 characters).")
    if len(names["qemuBridge"]) > 15:
        c.problem("qemuBridge", names["qemuBridge"], "is longer than the 15 characters Linux "
                  "allows for an interface name.")
    qemu_accel = c.value("qemuAccel")
    if qemu_accel not in QEMU_ACCELS:
        c.problem("qemuAccel", qemu_accel, f"must be one of {', '.join(QEMU_ACCELS)} (auto tries "
                  "KVM and falls back to software emulation).")
        qemu_accel = "auto"
    directories = {key: c.value(key) for key in ("localStateDir", "qemuImageDir")}
    for key, value in directories.items():
        if not value or "\n" in value:
            c.problem(key, value, "must be a directory path.")
    return LocalVmSettings(
        network_cidr=network_cidr,
        nameservers=tuple(nameservers),
        cpus=cpus,
        memory_mib=memory_mib,
        boot_timeout_seconds=boot_timeout,
        state_dir=directories["localStateDir"],
        qemu_image_dir=directories["qemuImageDir"],
        qemu_bridge=names["qemuBridge"],
        qemu_accel=qemu_accel,
        virtualbox_base_vm=names["virtualboxBaseVm"],
        virtualbox_hostonly_adapter=names["virtualboxHostOnlyAdapter"],
        virtualbox_storage_controller=names["virtualboxStorageController"],
    )
