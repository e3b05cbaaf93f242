"""machines/build-local-image chooses its Debian package sources on Debian and non-Debian hosts.

The choice is read from the builder itself (`--print-sources`, which builds nothing) with the
host's os-release and apt sources replaced by fixtures ($ETCD_IMAGE_HOST_ROOT): an Ubuntu host
(no Ubuntu mirror is reachable here, and none is contacted: only the fixture files are read), a
Debian host, a Debian host without sources. The image-booting tests' mirror probe
(tests/guests/image.py) follows the same choice. An unreachable mirror stops a build with an
error naming it (a closed port on 127.0.0.1; nothing else is contacted).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import realcheck
from guests import image

BUILDER = image.BUILDER
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

UBUNTU_OS_RELEASE = """PRETTY_NAME="Ubuntu 24.04.2 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.2 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"""
UBUNTU_SOURCES = """Types: deb
URIs: http://azure.archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main universe restricted multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""
DEBIAN_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
DEBIAN_SOURCES = """Types: deb
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def host(root: Path, os_release: str, sources: dict[str, str]) -> Path:
    (root / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(os_release)
    for name, text in sources.items():
        (root / "etc" / "apt" / name).write_text(text)
    return root


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("ETCD_IMAGE_MIRROR", "ETCD_IMAGE_SUITE")}
    return {**env, "ETCD_IMAGE_HOST_ROOT": str(root), **extra}


def test_the_builder_is_shellcheck_clean() -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, str(BUILDER)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def test_an_ubuntu_host_builds_from_debians_archive_with_the_debian_keyring(tmp_path: Path) -> None:
    root = host(tmp_path, UBUNTU_OS_RELEASE, {"sources.list.d/ubuntu.sources": UBUNTU_SOURCES})
    sources = image.builder_sources(env_for(root))
    assert sources["suite"] == ["bookworm"]
    assert sources["mirror"] == ["http://deb.debian.org/debian"]
    assert sources["source"] == [f"deb [signed-by={KEYRING}] http://deb.debian.org/debian bookworm main"]
    assert "the host is ubuntu, not Debian" in sources["origin"][0]
    # The probe the image-booting tests make is of that archive, never of Ubuntu's.
    assert image.mirror_release_url(sources) == "http://deb.debian.org/debian/dists/bookworm/Release"


def test_a_debian_host_builds_from_its_own_apt_sources(tmp_path: Path) -> None:
    root = host(tmp_path, DEBIAN_OS_RELEASE, {"sources.list.d/debian.sources": DEBIAN_SOURCES,
                                              "sources.list.d/old.list.disabled": "deb http://x/ y z\n"})
    sources = image.builder_sources(env_for(root))
    assert sources["source"] == [str(root / "etc/apt/sources.list.d/debian.sources")]
    assert sources["mirror"] == [""]
    assert image.mirror_release_url(sources) == "http://mirror.example.org/debian/dists/bookworm/Release"


def test_a_debian_host_without_sources_uses_debians_archive(tmp_path: Path) -> None:
    root = host(tmp_path, DEBIAN_OS_RELEASE, {})
    sources = image.builder_sources(env_for(root))
    assert sources["source"] == [f"deb [signed-by={KEYRING}] http://deb.debian.org/debian bookworm main"]


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_an_explicit_mirror_and_suite_win_over_the_hosts_sources(tmp_path: Path, how: str) -> None:
    root = host(tmp_path, DEBIAN_OS_RELEASE, {"sources.list.d/debian.sources": DEBIAN_SOURCES})
    argv = [str(BUILDER), "--print-sources"]
    env = env_for(root)
    if how == "flags":
        argv += ["--mirror", "https://deb.example.net/debian/", "--suite", "trixie"]
    else:
        env.update(ETCD_IMAGE_MIRROR="https://deb.example.net/debian/", ETCD_IMAGE_SUITE="trixie")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=True)
    assert done.stdout.splitlines() == [
        "suite=trixie", "origin=--mirror", "mirror=https://deb.example.net/debian",
        f"source=deb [signed-by={KEYRING}] https://deb.example.net/debian trixie main"]


def test_a_mirror_that_is_not_a_url_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([str(BUILDER), "--mirror", "deb.debian.org", "--print-sources"],
                          capture_output=True, text=True, env=env_for(tmp_path), timeout=60)
    assert done.returncode != 0
    assert "--mirror must be an http://, https:// or file:// URL, not 'deb.debian.org'" in done.stderr


@pytest.mark.real
def test_an_unreachable_mirror_stops_the_build_with_an_error_naming_it(tmp_path: Path) -> None:
    realcheck.require_root("run the builder past its root check")
    realcheck.require_tool("mmdebstrap", "mmdebstrap")
    if not Path(KEYRING).is_file():
        pytest.fail(f"{KEYRING} is missing: install the package debian-archive-keyring (.ci/run)")
    with socket.socket() as closed:  # a port nothing listens on: bound, never listening
        closed.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{closed.getsockname()[1]}/debian"
        output = tmp_path / "out" / "image"
        done = subprocess.run([str(BUILDER), "--mirror", mirror, str(output)], capture_output=True,
                              text=True, env=env_for(tmp_path), timeout=120)
    assert done.returncode != 0
    assert f"the Debian mirror cannot be reached: {mirror}/dists/bookworm/Release" in done.stderr, (
        done.stderr)
    assert not (tmp_path / "out").exists(), "the build started anyway"
