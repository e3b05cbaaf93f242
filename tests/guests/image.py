"""The local base image (machines/build-local-image) for tests that boot real members.

`ETCD_LOCAL_IMAGE_DIR`, when set and complete (it has `build-info`, written last by the
builder), is used as is; otherwise the image is built once per test session into a pytest
temporary directory (about a minute; needs root, mmdebstrap and an apt mirror). What is missing
is reported as `Unavailable` with a reason naming it; tests turn that into a skip, never a pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from guests.nspawn import Unavailable

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "machines" / "build-local-image"
IMAGE_FILES = ("disk.img", "vmlinuz", "initrd.img", "cmdline", "build-info")
ENV_IMAGE_DIR = "ETCD_LOCAL_IMAGE_DIR"


def complete(image_dir: Path) -> bool:
    """Whether `image_dir` holds a finished build (build-info is written last)."""
    return all((image_dir / name).is_file() for name in IMAGE_FILES)


def _apt_mirror_reason() -> str:
    """Why the host's apt mirror cannot be reached ("" when it can): the first URI of its
    sources, fetched with a short timeout."""
    uris: list[str] = []
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
               *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"]:
                uris += words[1:]
            elif words[:1] == ["deb"]:
                uris += [word for word in words[1:] if "://" in word][:1]
    if not uris:
        uris = ["http://deb.debian.org/debian"]
    uri = uris[0].rstrip("/") + "/dists/bookworm/Release"
    if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
        return ""  # file:, mirror+file: ... : let mmdebstrap judge
    try:
        with urllib.request.urlopen(urllib.request.Request(uri, method="HEAD"), timeout=15):
            return ""
    except OSError as error:
        return f"the apt mirror is unreachable ({uri}: {error})"


def missing_for_build() -> str:
    """Why the image cannot be built here ("" when it can)."""
    if os.geteuid() != 0:
        return "not root: building the local image (mmdebstrap, mkfs.ext4 -d) needs root"
    if not shutil.which("mmdebstrap"):
        return "mmdebstrap not found: install the Debian package mmdebstrap"
    if not shutil.which("mkfs.ext4") and not Path("/sbin/mkfs.ext4").exists():
        return "mkfs.ext4 not found: install the Debian package e2fsprogs"
    return _apt_mirror_reason()


def image_dir(build_root: Path) -> Path:
    """A complete image directory: $ETCD_LOCAL_IMAGE_DIR if set and complete, else a new build
    under `build_root`. Raises Unavailable naming what is missing."""
    configured = os.environ.get(ENV_IMAGE_DIR)
    if configured and complete(Path(configured)):
        return Path(configured)
    reason = missing_for_build()
    if reason:
        where = f" ({ENV_IMAGE_DIR}={configured} is not a complete image)" if configured else ""
        raise Unavailable(f"no local image{where} and cannot build one: {reason}")
    target = build_root / "etcd-local-image"
    if complete(target):
        return target
    started = time.monotonic()
    built = subprocess.run([str(BUILDER), str(target)], capture_output=True, text=True, timeout=1800)
    if built.returncode != 0 or not complete(target):
        raise RuntimeError(f"{BUILDER} failed ({built.returncode}):\n{built.stderr[-4000:]}")
    print(f"built the local image in {time.monotonic() - started:.0f} s: {target}")
    return target


_session_image: dict[str, Path | str] = {}


def image_or_skip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For a session-scoped fixture: the image directory, built at most once per session;
    skips (with the reason) when there is none and it cannot be built."""
    if "found" not in _session_image:
        try:
            _session_image["found"] = image_dir(tmp_path_factory.mktemp("local-image"))
        except Unavailable as missing:
            _session_image["found"] = str(missing)
    found = _session_image["found"]
    if isinstance(found, str):
        pytest.skip(found)
    return found
