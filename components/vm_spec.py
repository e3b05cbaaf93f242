"""What the local backends hand their create/delete scripts: command lines and environment.

Pure: no Pulumi imports. The scripts (machines/) take the member's user-data on stdin and
everything else from these ETCD_VM_* variables (machines/README.md documents each); the seed
documents are rendered here by the YAML serializer, never by the scripts. It uses cloudinit's
seed renderer, so it lives in components/ (imports run model <- cloudinit <- components).
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudinit import seed
from model import local_network
from model.cluster_spec import ClusterSpec
from model.settings import Backend
from model.topology import Member

# Where each backend's data disk appears in the guest (the disk's serial is `etcd-data`).
DATA_DEVICES: dict[Backend, str] = {
    "qemu": "/dev/disk/by-id/virtio-etcd-data",
    "virtualbox": "/dev/disk/by-id/ata-VBOX_HARDDISK_etcd-data",
}
# Run as `/bin/sh <script>` from the project directory, so a moved checkout still works.
INTERPRETER = ["/bin/sh"]


@dataclass(frozen=True)
class VmScripts:
    create: str
    delete: str


def scripts(backend: Backend) -> VmScripts:
    return VmScripts(create=f"machines/{backend}/create-vm", delete=f"machines/{backend}/delete-vm")


def vm_name(cluster: ClusterSpec, member: Member) -> str:
    """Unique on the machine across stacks and clusters (VirtualBox names are global)."""
    return f"{cluster.resource_prefix}-{member.name}"


def static_ipv4(cluster: ClusterSpec, member: Member) -> str:
    """The member's static address; local backends have one for every member."""
    if member.static_ipv4 is None:
        raise ValueError(f"{member.name} has no static address; the backend is {cluster.backend}")
    return member.static_ipv4


def _static_address(cluster: ClusterSpec, member: Member) -> str:
    prefix_length = local_network.prefix_length(cluster.local.network_cidr)
    return f"{static_ipv4(cluster, member)}/{prefix_length}"


def network_seed(cluster: ClusterSpec, member: Member) -> seed.NetworkSeed:
    name = vm_name(cluster, member)
    static = seed.StaticInterface(
        mac=local_network.mac_address(name),
        address=_static_address(cluster, member),
        # VirtualBox VMs reach out through their NAT NIC; QEMU VMs through the host's bridge.
        gateway=(local_network.gateway_ipv4(cluster.local.network_cidr)
                 if cluster.backend == "qemu" else None),
        nameservers=cluster.local.nameservers,
    )
    if cluster.backend == "virtualbox":
        return seed.NetworkSeed(static=static,
                                dhcp=(seed.DhcpInterface(mac=nat_mac(cluster, member)),))
    return seed.NetworkSeed(static=static)


def nat_mac(cluster: ClusterSpec, member: Member) -> str:
    return local_network.mac_address(f"{vm_name(cluster, member)}/nat")


def environment(cluster: ClusterSpec, member: Member) -> dict[str, str]:
    """The ETCD_VM_* variables of one member's create and delete scripts."""
    name = vm_name(cluster, member)
    local = cluster.local
    variables = {
        "ETCD_VM_NAME": name,
        "ETCD_VM_HOSTNAME": member.fqdn,
        "ETCD_VM_STATE_DIR": f"{local.state_dir.rstrip('/')}/{name}",
        "ETCD_VM_CPUS": str(local.cpus),
        "ETCD_VM_MEMORY_MIB": str(local.memory_mib),
        "ETCD_VM_DATA_DISK_GIB": str(cluster.data_volume_size_gib),
        "ETCD_VM_MAC": local_network.mac_address(name),
        "ETCD_VM_META_DATA": seed.meta_data(instance_id=name, hostname=member.fqdn),
        "ETCD_VM_NETWORK_CONFIG": seed.network_config(network_seed(cluster, member)),
        "ETCD_VM_BOOT_TIMEOUT": str(local.boot_timeout_seconds),
    }
    if cluster.backend == "qemu":
        variables.update({
            "ETCD_VM_IMAGE_DIR": local.qemu_image_dir,
            "ETCD_VM_BRIDGE": local.qemu_bridge,
            "ETCD_VM_ACCEL": local.qemu_accel,
        })
    elif cluster.backend == "virtualbox":
        variables.update({
            "ETCD_VM_BASE_VM": local.virtualbox_base_vm,
            "ETCD_VM_HOSTONLY_ADAPTER": local.virtualbox_hostonly_adapter,
            "ETCD_VM_STORAGE_CONTROLLER": local.virtualbox_storage_controller,
            "ETCD_VM_NAT_MAC": nat_mac(cluster, member),
        })
    else:
        raise ValueError(f"backend {cluster.backend} does not run VMs on this machine")
    return variables
