"""Validation of who may reach the members (the cloud firewall) and of the DigitalOcean settings."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from model.settings.parsing import DNS_LABEL, Reader, check_cidrs, check_dns_label, check_range, check_tags
from model.settings.types import resource_prefix

# DigitalOcean block volumes: 1 GiB to 16 TiB.
MIN_VOLUME_GIB, MAX_VOLUME_GIB = 1, 16 * 1024
# DigitalOcean limits volume names (`<resource prefix>-<n>`) to 64 characters.
MAX_VOLUME_NAME = 64

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# DigitalOcean accepts an SSH key by numeric ID or by its MD5 fingerprint.
_SSH_KEY_REF = re.compile(r"^([0-9]+|[0-9a-f]{2}(:[0-9a-f]{2}){15})$")


def check_access(c: Reader) -> dict[str, Any]:
    client_source_tags = c.value("clientSourceTags")
    client_source_cidrs = check_cidrs(c, "clientSourceCidrs", c.value("clientSourceCidrs"))
    monitoring_source_tags = c.value("monitoringSourceTags")
    monitoring_source_cidrs = check_cidrs(c, "monitoringSourceCidrs", c.value("monitoringSourceCidrs"))
    admin_cidrs = check_cidrs(c, "adminCidrs", c.value("adminCidrs"))
    for key, tags in (("clientSourceTags", client_source_tags),
                      ("monitoringSourceTags", monitoring_source_tags)):
        check_tags(c, key, tags)
    admin_ssh_keys = c.value("adminSshKeys")
    for key in admin_ssh_keys:
        if not _SSH_KEY_REF.match(key):
            c.problem("adminSshKeys", key, "must be a DigitalOcean SSH key ID or MD5 fingerprint "
                      "(`doctl compute ssh-key list`).")
    return {"client_source_tags": tuple(client_source_tags),
            "client_source_cidrs": tuple(client_source_cidrs),
            "monitoring_source_tags": tuple(monitoring_source_tags),
            "monitoring_source_cidrs": tuple(monitoring_source_cidrs),
            "admin_ssh_keys": tuple(admin_ssh_keys), "admin_cidrs": tuple(admin_cidrs)}


def check_volume_names(c: Reader, cluster_name: str, stack: str, named: str = "") -> None:
    """DigitalOcean volume names (`<resource prefix>-<n>`) of the cluster `named` fit 64 characters."""
    name = f"{cluster_name}{named}"
    longest_volume = f"{resource_prefix(name, stack)}-7"
    if DNS_LABEL.match(cluster_name) and len(longest_volume) > MAX_VOLUME_NAME:
        whose = f"its events cluster ({name})" if named else "it"
        c.problem("clusterName", cluster_name, f"with stack {stack!r} makes DigitalOcean volume "
                  f"names of {whose} longer than 64 characters; use a cluster name of at most "
                  f"{MAX_VOLUME_NAME - len(longest_volume) + len(cluster_name)} characters.")


def check_digitalocean(c: Reader, cluster_name: str, stack: str) -> dict[str, Any]:
    check_volume_names(c, cluster_name, stack)
    region = c.value("region")
    check_dns_label(c, "region", region, "the region slug (e.g. nyc3, fra1)")
    extra_tags = c.value("extraTags")
    check_tags(c, "extraTags", extra_tags)
    vpc_id = c.value("vpcId")
    if vpc_id and not _UUID.match(vpc_id):
        c.problem("vpcId", vpc_id, "must be a VPC UUID (`doctl vpcs list`), or empty to create a VPC.")
    droplet_size = c.value("dropletSize")
    droplet_image = c.value("dropletImage")
    for key, value in (("dropletSize", droplet_size), ("dropletImage", droplet_image)):
        if not value:
            c.problem(key, c.raw.get(key), "must not be empty.")
    vpc_ip_range = c.value("vpcIpRange")
    if vpc_ip_range:
        ranges = check_cidrs(c, "vpcIpRange", [vpc_ip_range])
        if ranges and not ipaddress.ip_network(ranges[0]).is_private:
            c.problem("vpcIpRange", vpc_ip_range, "must be a private range (10.0.0.0/8, "
                      "172.16.0.0/12 or 192.168.0.0/16).")
    data_volume_size_gib = c.value("dataVolumeSizeGib")
    check_range(c, "dataVolumeSizeGib", data_volume_size_gib, MIN_VOLUME_GIB, MAX_VOLUME_GIB,
                "DigitalOcean volumes are 1 GiB to 16 TiB.")
    return {"region": region, "droplet_size": droplet_size, "droplet_image": droplet_image,
            "vpc_id": vpc_id, "vpc_ip_range": vpc_ip_range,
            "data_volume_size_gib": data_volume_size_gib,
            "protect_members": c.value("protectMembers"), "extra_tags": tuple(extra_tags)}
