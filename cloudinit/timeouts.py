"""How long a member's first boot waits for each thing, in one place, and why so long.

Pure: no Pulumi imports. Each bounds a wait that ends on its own on a healthy boot; the bound
only decides how long a broken one takes to fail (and be retried by systemd).
"""

from __future__ import annotations

# The data volume's device: DigitalOcean attaches the volume after the droplet has booted.
DATA_DEVICE_TIMEOUT_SECONDS = 600
# Every peer's name resolving: DNS records are created once every droplet has an address, and
# local VMs boot one after another under software emulation.
PEER_NAMES_TIMEOUT_SECONDS = 900
# etcd's first start, which includes the wait for peer names and then for a quorum of peers.
ETCD_START_TIMEOUT_SECONDS = PEER_NAMES_TIMEOUT_SECONDS + 300
