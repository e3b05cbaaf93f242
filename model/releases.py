"""etcd releases this program knows: version lines, the default version and pinned checksums.

Pure: no Pulumi imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUPPORTED_LINES = ("3.4", "3.5", "3.6", "3.7")
DEFAULT_DOWNLOAD_URL = (
    "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-amd64.tar.gz"
)

_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class VersionError(ValueError):
    pass


@dataclass(frozen=True)
class PinnedRelease:
    """SHA-256 of `etcd-v<version>-linux-amd64.tar.gz`, and where it was read."""

    version: str
    sha256: str
    source: str


# Each checksum is the one upstream publishes in the release's SHA256SUMS, as pinned by the
# project named in `source` (read there, not computed here: there is no internet on CI).
# Only checksums that independent projects agree on are pinned; for any other release (3.6.15,
# say, seen pinned by a single project) set `etcdSha256` from upstream's SHA256SUMS.
# tests/data/etcd-release-sha256sums.txt records each one apart from this code, with its sources;
# tests/test_releases.py checks the two agree (add a release to both).
PINNED: dict[str, PinnedRelease] = {
    release.version: release
    for release in (
        PinnedRelease(
            "3.7.1", "e8cd3fa8064c98137c5dbd78b76f969417ace84efb83c481041d7a52ffdd8fb9",
            "six independent install scripts and Dockerfiles pinning the v3.7.1 tarball"),
        PinnedRelease(
            "3.6.14", "ffe840ff9295808e88cce2794a18a5ac87f12a5203c8314d0bf6aa119b41bac5",
            "eight or more independent projects' install scripts (integration tests, k0s image "
            "builds, installers) pinning the v3.6.14 tarball"),
        PinnedRelease(
            "3.6.13", "b4928654aed84d90952620c7144555e4186d795e1e7414e65fe0cf6265fd0465",
            "chromebrew/chromebrew packages/etcd.rb @ 3e71802149d7; cybozu-go/sabakan Makefile"),
        PinnedRelease(
            "3.5.33", "5025b5b24d81a9616b6e284ccd439b9a3df055ef8fdcdc142af3ec8f6a3b3c95",
            "two independent setup scripts and a postgres-ha project's docs and tests"),
        PinnedRelease(
            "3.5.21", "adddda4b06718e68671ffabff2f8cee48488ba61ad82900e639d108f2148501c",
            "kubernetes-sigs/kubespray roles/kubespray_defaults/vars/main/checksums.yml "
            "@ 005bdce7f186; chromebrew etcd.rb; a Bazel http_archive list"),
        PinnedRelease(
            "3.4.13", "2ac029e47bab752dacdb7b30032f230f49e2f457cbc32e8f555c2210bb5ff107",
            "kubernetes/kubernetes build/workspace.bzl @ 00a07cfd86ad (_ETCD_TARBALL_ARCH_SHA256)"),
    )
}

DEFAULT_VERSION = "3.6.14"

# The oldest patch release of the previous line from which a line may be entered, where etcd's
# upgrade guide names one: "Before upgrading to 3.6, make sure that all of your 3.5 members are
# updated to 3.5.32 or later" (etcd.io/docs/v3.6/upgrades/upgrade_3_6; earlier editions said
# 3.5.20, then 3.5.24 and 3.5.26: the guide raises it as upgrade blockers are fixed). The
# member-side upgrade check (etcd-reconfigure --previous-minor-from) enforces it.
PREVIOUS_LINE_MINIMUM = {"3.6": "3.5.32"}
KNOWN_VERSIONS: tuple[str, ...] = tuple(PINNED)

# Releases a rollout cannot run on, and why. The members' health gates run etcdctl with the
# ETCDCTL_* variables of /etc/etcd/etcdctl.env, and etcdctl 3.6.0 fails `endpoint health`
# whenever they are set (etcd-io/etcd#20118, fixed in 3.6.1): the first member upgraded to it
# would stop every later gate.
REFUSED_VERSIONS = {
    "3.6.0": ("its etcdctl fails `endpoint health` whenever ETCDCTL_* variables are set "
              "(etcd-io/etcd#20118, fixed in 3.6.1), and the members' health gates run it so"),
}
# The oldest releases etcd and Kubernetes recommend for production, per line: the releases before
# them have known data-inconsistency bugs (etcd's CHANGELOG, "Production recommendation";
# Kubernetes' etcd documentation since kubernetes/website#40816: 3.4.22+ and 3.5.6+).
PRODUCTION_MINIMUM = {"3.4": "3.4.22", "3.5": "3.5.6"}
# The first release of each line whose restore tool has --bump-revision and --mark-compacted
# (etcd-io/etcd#16029, backported as #16165; read from the v3.4.27 and v3.5.10 tags' etcdctl and
# etcdutl snapshot commands): every 3.6 and 3.7 release has them.
BUMP_REVISION_MINIMUM = {"3.4": "3.4.27", "3.5": "3.5.10"}


def version_line(version: str) -> str:
    """`3.6.5` -> `3.6`; raises VersionError for a malformed version or an unsupported line."""
    text = version.strip()
    match = _VERSION.match(text.removeprefix("v"))
    if not match:
        raise VersionError(
            "is not a release version; write MAJOR.MINOR.PATCH without suffixes, e.g. "
            f"{DEFAULT_VERSION}."
        )
    line = f"{match.group(1)}.{match.group(2)}"
    if line not in SUPPORTED_LINES:
        raise VersionError(
            f"is on the {line} line, which this program does not generate flags for; use a "
            f"release of {', '.join(SUPPORTED_LINES)} (default {DEFAULT_VERSION})."
        )
    if text.startswith("v"):
        raise VersionError(f"write the version without the leading v: {text[1:]}.")
    return line


def previous_line_minimum(version: str) -> str | None:
    """The oldest release of the previous line that may upgrade to `version` (None: any)."""
    return PREVIOUS_LINE_MINIMUM.get(version_line(version))


def known_sha256(version: str) -> str | None:
    pinned = PINNED.get(version)
    return pinned.sha256 if pinned else None


def download_url(url_template: str, version: str) -> str:
    return url_template.replace("{version}", version)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def refused_reason(version: str) -> str | None:
    """Why a rollout cannot run on `version`, with the fix; None when it can."""
    reason = REFUSED_VERSIONS.get(version)
    if reason is None:
        return None
    newer = [known for known in KNOWN_VERSIONS
             if version_line(known) == version_line(version) and _numbers(known) > _numbers(version)]
    return f"is refused: {reason}; use a later {version_line(version)} release" + (
        f" (e.g. {max(newer, key=_numbers)})." if newer else ".")


def production_warning(version: str) -> str | None:
    """A warning for a release older than its line's minimum recommended for production."""
    minimum = PRODUCTION_MINIMUM.get(version_line(version))
    if minimum is None or _numbers(version) >= _numbers(minimum):
        return None
    return (f"etcdVersion {version} is older than {minimum}, the oldest {version_line(version)} "
            "release etcd and Kubernetes recommend for production (earlier ones have known "
            f"data-inconsistency bugs): set etcdVersion to {minimum} or later, or to "
            f"{DEFAULT_VERSION} (the default).")


def can_bump_revision(version: str) -> bool:
    """Does `version`'s restore tool take --bump-revision (etcd-restore asks it too)?"""
    minimum = BUMP_REVISION_MINIMUM.get(version_line(version))
    return minimum is None or _numbers(version) >= _numbers(minimum)
