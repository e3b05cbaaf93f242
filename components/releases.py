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
PINNED: dict[str, PinnedRelease] = {}

DEFAULT_VERSION = "3.6.5"
KNOWN_VERSIONS: tuple[str, ...] = tuple(PINNED)


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


def known_sha256(version: str) -> str | None:
    pinned = PINNED.get(version)
    return pinned.sha256 if pinned else None


def download_url(url_template: str, version: str) -> str:
    return url_template.replace("{version}", version)
