"""The cloud firewall, emulated for real with nftables inside each member's namespace.

DigitalOcean applies the project's firewall (model/firewall.py `inbound_rules`) to every
droplet with the cluster tag: a port is reachable only from the tags and CIDRs a rule lists,
and a port no rule lists is closed. Here each source tag becomes the addresses of the namespaces
that carry it (the members carry their droplets' tags, the client namespace the client tags, the
monitoring namespace the monitoring tags), and each member namespace gets an input chain that
accepts what the rules allow and drops every other connection to the member ports. Loopback is
not filtered (a cloud firewall never sees a droplet's traffic to itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from model.firewall import InboundRule

TABLE = "erc_cloud_firewall"
# Every inbound port the design names (README "Ports on each member"): closed unless a rule opens it.
MEMBER_PORTS = (22, 2379, 2380, 2381)
DROP_COMMENT = "no rule admits it"


def tag_addresses(hosts: Iterable[tuple[str, Sequence[str]]]) -> dict[str, list[str]]:
    """(address, tags) per host -> tag -> addresses."""
    found: dict[str, list[str]] = {}
    for address, tags in hosts:
        for tag in tags:
            found.setdefault(tag, []).append(address)
    return found


def ruleset(rules: Sequence[InboundRule], addresses_of_tag: Mapping[str, Sequence[str]]) -> str:
    """An nft script (for `nft -f -`) enforcing `rules` on this namespace's input."""
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "    chain input {",
        "        type filter hook input priority 0; policy accept;",
        '        iif "lo" accept',
    ]
    for rule in rules:
        sources = [address for tag in rule.source_tags for address in addresses_of_tag.get(tag, [])]
        sources += list(rule.source_cidrs)
        if sources:
            lines.append(f"        tcp dport {rule.port} ip saddr {{ {', '.join(sorted(set(sources)))} }} "
                         f"accept comment \"{rule.purpose}\"")
    ports = ", ".join(str(port) for port in sorted({*MEMBER_PORTS, *(rule.port for rule in rules)}))
    lines += [f"        tcp dport {{ {ports} }} counter drop comment \"{DROP_COMMENT}\"", "    }", "}"]
    return "\n".join(lines) + "\n"


def dropped_packets(listing: str) -> int:
    """Packets the final drop rule counted, from `nft list table inet TABLE`."""
    for line in listing.splitlines():
        if DROP_COMMENT in line:
            found = re.search(r"counter packets (\d+)", line)
            if found:
                return int(found.group(1))
    raise ValueError(f"no drop counter in:\n{listing}")


def remove_script() -> str:
    return f"table inet {TABLE}\ndelete table inet {TABLE}\n"
