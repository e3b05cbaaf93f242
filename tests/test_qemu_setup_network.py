"""machines/qemu/setup-network, the one-time host setup of the QEMU backend, run for real inside
a network namespace of its own (never the host's) with a private bridge ACL file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import realcheck

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "machines" / "qemu" / "setup-network"


def setup(ns: str, conf: Path, *args: str, tun: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SUDO_USER"}
    env["QEMU_BRIDGE_CONF"] = str(conf)
    if tun is not None:
        env["QEMU_TUN_DEVICE"] = str(tun)
    return subprocess.run(realcheck.in_netns(ns, ["/bin/sh", str(SETUP), *args]), env=env,
                          capture_output=True, text=True, timeout=60)


def ip_json(ns: str, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True,
                          check=True, timeout=30)
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found


def test_shellcheck_finds_nothing() -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, str(SETUP)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def test_a_gateway_without_a_prefix_length_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(["/bin/sh", str(SETUP), "etcdbr0", "192.168.56.1"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0 and "must carry the prefix length" in done.stderr


@pytest.mark.real
def test_it_makes_the_bridge_allows_it_for_qemu_and_nats_the_network_idempotently(tmp_path: Path) -> None:
    realcheck.require_tool("nft", "nftables")
    conf = tmp_path / "qemu" / "bridge.conf"
    with realcheck.netns() as ns:
        for _ in range(2):
            done = setup(ns, conf, "--nat", "etcdtest0", "192.168.77.1/24")
            assert done.returncode == 0, done.stderr
        (bridge,) = ip_json(ns, "addr", "show", "dev", "etcdtest0")
        # Set up by the script (`ip link set ... up`): the administrative UP flag. With no port
        # yet it has no carrier, so its operational state is not the script's doing.
        assert "UP" in bridge["flags"], bridge  # type: ignore[operator]
        (details,) = ip_json(ns, "-d", "link", "show", "dev", "etcdtest0")
        assert details["linkinfo"]["info_kind"] == "bridge", details  # type: ignore[index]
        # A VM's port joins (a veth here, as QEMU's tap would): the bridge then carries traffic.
        for command in (["link", "add", "etcdtest0-p", "type", "veth", "peer", "name", "etcdtest0-q"],
                        ["link", "set", "etcdtest0-p", "master", "etcdtest0", "up"],
                        ["link", "set", "etcdtest0-q", "up"]):
            subprocess.run(["ip", "-n", ns, *command], check=True, timeout=30)
        assert realcheck.wait_for(
            lambda: ip_json(ns, "link", "show", "dev", "etcdtest0")[0]["operstate"] == "UP",
            timeout=30), ip_json(ns, "link", "show", "dev", "etcdtest0")
        addresses = [f"{a['local']}/{a['prefixlen']}" for a in bridge["addr_info"]  # type: ignore[attr-defined]
                     if a["family"] == "inet"]
        assert addresses == ["192.168.77.1/24"]
        assert conf.read_text() == "allow etcdtest0\n"
        rules = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip",
                                "etcd-local-etcdtest0"], capture_output=True, text=True, check=True,
                               timeout=30).stdout
        assert "ip saddr 192.168.77.0/24 ip daddr != 192.168.77.0/24 masquerade" in rules
        forwarding = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                                     "net.ipv4.ip_forward"], capture_output=True, text=True,
                                    check=True, timeout=30).stdout.strip()
        assert forwarding == "1"


def tun_node(path: Path, mode: int) -> Path:
    """A character device like /dev/net/tun (same numbers), with `mode`."""
    import stat
    os.mknod(path, mode | stat.S_IFCHR, os.stat("/dev/net/tun").st_rdev)
    path.chmod(mode)
    return path


def test_a_tun_device_closed_to_users_is_reported_with_the_fix(tmp_path: Path) -> None:
    realcheck.require_root("create a device node")
    if not Path("/dev/net/tun").exists():
        pytest.skip("/dev/net/tun is missing: this kernel has no TUN/TAP driver")
    with realcheck.netns() as ns:
        closed = setup(ns, tmp_path / "bridge.conf", "etcdtest1", "192.168.78.1/24",
                       tun=tun_node(tmp_path / "closed-tun", 0o600))
        assert closed.returncode == 0, closed.stderr
        assert "closed-tun is not open to other users (crw-------)" in closed.stderr, closed.stderr
        assert f"fix: chmod 0666 {tmp_path / 'closed-tun'}" in closed.stderr, closed.stderr
        open_tun = setup(ns, tmp_path / "bridge.conf", "etcdtest1", "192.168.78.1/24",
                         tun=tun_node(tmp_path / "open-tun", 0o666))
        assert open_tun.returncode == 0, open_tun.stderr
        assert "warning" not in open_tun.stderr, open_tun.stderr
