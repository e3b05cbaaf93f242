"""The local base image (machines/build-local-image) for tests that boot real members.

`ETCD_LOCAL_IMAGE_DIR`, when set and complete (it has `build-info`, written last by the
builder), is used as is; otherwise the image is built once per test session (once for all its
processes, under pytest-xdist) into a pytest temporary directory (about a minute; needs root,
mmdebstrap and a Debian mirror, chosen as the builder chooses it). A missing tool is reported
as `Unavailable` with a reason naming it; tests turn that into a skip, never a pass (and under
CI a skip fails the run). A mirror that cannot be reached is an error, `MirrorUnreachable`.
"""

from __future__ import annotations

import fcntl
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


class MirrorUnreachable(RuntimeError):
    """The Debian mirror the builder would use cannot be reached: an error, never a skip."""


def builder_sources(env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The builder's own choice of package sources (`--print-sources`): suite, origin, mirror
    (the archive URL, empty when the host's apt sources decide) and source (one or more)."""
    done = subprocess.run([str(BUILDER), "--print-sources"], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{BUILDER} --print-sources failed: {done.stderr.strip()}")
    found: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def _first_uri(paths: list[str]) -> str:
    """The first URI of apt sources files (one-line .list or deb822 .sources)."""
    for name in paths:
        path = Path(name)
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and words[1:]:
                return words[1]
            if words[:1] == ["deb"]:
                uris = [word for word in words[1:] if "://" in word]
                if uris:
                    return uris[0]
    return ""


def mirror_release_url(sources: dict[str, list[str]]) -> str:
    """The Release file the builder's first source serves for its suite ("" when the sources
    name no http(s) URL: file:, mirror+file: ... are left to mmdebstrap)."""
    suite = sources["suite"][0]
    uri = sources.get("mirror", [""])[0] or _first_uri(sources.get("source", []))
    if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
        return ""
    return uri.rstrip("/") + f"/dists/{suite}/Release"


def check_mirror() -> None:
    """Raise MirrorUnreachable when the mirror the builder would use does not answer. Only that
    mirror is contacted (on a Debian host: its own configured apt mirror)."""
    uri = mirror_release_url(builder_sources())
    if not uri:
        return
    try:
        with urllib.request.urlopen(urllib.request.Request(uri, method="HEAD"), timeout=15):
            return
    except OSError as error:
        raise MirrorUnreachable(
            f"the Debian mirror machines/build-local-image would use cannot be reached ({uri}: "
            f"{error}); set ETCD_IMAGE_MIRROR to a Debian mirror this machine reaches, or "
            f"{ENV_IMAGE_DIR} to a built image") from error


def missing_for_build() -> str:
    """Why the image cannot be built here ("" when it can)."""
    if os.geteuid() != 0:
        return "not root: building the local image (mmdebstrap, mkfs.ext4 -d) needs root"
    if not shutil.which("mmdebstrap"):
        return "mmdebstrap not found: install the Debian package mmdebstrap"
    if not shutil.which("mkfs.ext4") and not Path("/sbin/mkfs.ext4").exists():
        return "mkfs.ext4 not found: install the Debian package e2fsprogs"
    return ""


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
    check_mirror()
    target = build_root / "etcd-local-image"
    build_root.mkdir(parents=True, exist_ok=True)
    if complete(target):
        return target
    started = time.monotonic()
    built = subprocess.run([str(BUILDER), str(target)], capture_output=True, text=True, timeout=1800)
    if built.returncode != 0 or not complete(target):
        raise RuntimeError(f"{BUILDER} failed ({built.returncode}):\n{built.stderr[-4000:]}")
    print(f"built the local image in {time.monotonic() - started:.0f} s: {target}")
    return target


_session_image: dict[str, Path | str] = {}


def shared_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every process of the session shares: the session's own temporary
    directory, or, when pytest-xdist runs the tests in several processes, the one their
    directories are in."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def image_or_skip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For a session-scoped fixture: the image directory, built at most once per session (by
    the first process of the session that needs it, while the others wait for it); skips (with
    the reason) when there is none and it cannot be built."""
    if "found" not in _session_image:
        shared = shared_temp(tmp_path_factory)
        with (shared / "local-image.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                _session_image["found"] = image_dir(shared / "local-image")
            except Unavailable as missing:
                _session_image["found"] = str(missing)
    found = _session_image["found"]
    if isinstance(found, str):
        pytest.skip(found)
    return found
