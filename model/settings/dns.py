"""Validation of the DNS settings: the Cloudflare zone the member names live in."""

from __future__ import annotations

import re
from typing import Any

from model.settings.parsing import DNS_LABEL, Reader, check_dns_label, check_range
from model.settings.types import LOCAL_BACKENDS

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def check_dns(c: Reader, backend: str, cluster_name: str) -> dict[str, Any]:
    dns_zone = (c.value("dnsZone") or "").lower().rstrip(".")
    if not dns_zone:
        c.problem("dnsZone", None, "is required: the Cloudflare zone for member records, e.g. "
                  "`pulumi config set dnsZone example.com`.")
    else:
        labels = dns_zone.split(".")
        if len(labels) < 2 or not all(DNS_LABEL.match(label) for label in labels):
            c.problem("dnsZone", dns_zone, "must be a domain name of DNS labels, e.g. example.com.")
    zone_id = (c.value("cloudflareZoneId") or "").lower()
    if not zone_id and backend not in LOCAL_BACKENDS:
        c.problem("cloudflareZoneId", None, "is required: the 32-character zone ID from the "
                  "Cloudflare dashboard (zone Overview page, API section).")
    elif zone_id and not _HEX32.match(zone_id):
        c.problem("cloudflareZoneId", zone_id, "must be 32 hexadecimal characters (zone Overview "
                  "page of the Cloudflare dashboard).")
    dns_subdomain = c.value("dnsSubdomain") or cluster_name
    if c.value("dnsSubdomain"):  # the default is the cluster name, checked with the cluster
        for label in dns_subdomain.split("."):
            check_dns_label(c, "dnsSubdomain", label, "each part of the subdomain")
    longest_fqdn = f"etcd-7.{dns_subdomain}.{dns_zone}"
    if len(longest_fqdn) > 253:
        c.problem("dnsSubdomain", dns_subdomain, f"makes member names such as {longest_fqdn[:40]}... "
                  "longer than the 253 characters DNS allows; use a shorter subdomain or zone.")
    dns_ttl = c.value("dnsTtl")
    if dns_ttl != 1:  # Cloudflare's 1 means "automatic"
        check_range(c, "dnsTtl", dns_ttl, 60, 86400,
                    "Cloudflare accepts 60-86400 seconds (or 1 for automatic).")
    return {"dns_zone": dns_zone, "cloudflare_zone_id": zone_id, "dns_subdomain": dns_subdomain,
            "dns_ttl": dns_ttl, "dns_srv_records": c.value("dnsSrvRecords")}
