"""The built-in release checksums (model/releases.py) against a record kept apart from the
code: tests/data/etcd-release-sha256sums.txt, lines in the format of upstream's SHA256SUMS, each
with where it was read. A mistyped checksum fails here, not at a member's first boot."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from model import releases

RECORD = Path(__file__).resolve().parent / "data" / "etcd-release-sha256sums.txt"
LINE = re.compile(r"^([0-9a-f]{64})  (etcd-v(\d+\.\d+\.\d+)-linux-amd64\.tar\.gz)$")


@dataclass
class Recorded:
    sha256: str
    file_name: str
    sources: list[str] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)  # upstream SHA256SUMS lines, where recorded


def parse(text: str) -> dict[str, Recorded]:
    """version -> its record; every checksum line must be preceded by a `# source:` comment."""
    recorded: dict[str, Recorded] = {}
    sources: list[str] = []
    upstream: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# source:"):
            sources.append(line.removeprefix("# source:").strip())
        elif line.startswith("# upstream:"):
            upstream.append(line.removeprefix("# upstream:").strip())
        elif line.startswith("#") or not line.strip():
            if not line.strip():
                sources, upstream = [], []
            continue
        else:
            match = LINE.match(line)
            assert match, f"{RECORD.name}:{number}: not `<sha256>  etcd-vX.Y.Z-linux-amd64.tar.gz`"
            sha256, file_name, version = match.groups()
            assert version not in recorded, f"{RECORD.name}:{number}: {version} recorded twice"
            assert sources, f"{RECORD.name}:{number}: {version} has no `# source:` line above it"
            recorded[version] = Recorded(sha256, file_name, sources, upstream)
            sources, upstream = [], []
    return recorded


RECORDED = parse(RECORD.read_text())


def test_every_built_in_release_is_in_the_record_and_nothing_else() -> None:
    assert set(RECORDED) == set(releases.PINNED)


@pytest.mark.parametrize("version", sorted(releases.PINNED))
def test_each_built_in_checksum_matches_the_independent_record(version: str) -> None:
    record = RECORDED[version]
    assert releases.known_sha256(version) == record.sha256, (
        f"model/releases.py pins {releases.known_sha256(version)} for {version}; "
        f"{RECORD.name} records {record.sha256} ({'; '.join(record.sources)})")
    assert record.file_name == releases.download_url(
        releases.DEFAULT_DOWNLOAD_URL, version).rsplit("/", 1)[1]
    # An upstream SHA256SUMS line, where one is recorded, says the same for the same file.
    for line in record.upstream:
        assert line == f"{record.sha256}  {record.file_name}", line


def test_a_mistyped_checksum_would_not_match_its_record() -> None:
    # The control: one hex digit off is caught by the comparison above.
    version = releases.DEFAULT_VERSION
    good = RECORDED[version].sha256
    typo = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert typo != good
    text = RECORD.read_text().replace(good, typo)
    assert parse(text)[version].sha256 != releases.known_sha256(version)


def test_a_checksum_line_without_a_source_is_refused() -> None:
    with pytest.raises(AssertionError, match="has no `# source:` line"):
        parse(f"{'ab' * 32}  etcd-v3.6.99-linux-amd64.tar.gz\n")


@pytest.mark.parametrize("version", ["3.4.21", "3.5.1", "3.5.5"])
def test_a_release_before_its_lines_production_minimum_is_warned_about(version: str) -> None:
    warning = releases.production_warning(version)
    assert warning is not None and f"etcdVersion {version} is older than" in warning
    assert "data-inconsistency" in warning


@pytest.mark.parametrize("version", ["3.4.22", "3.4.23", "3.5.6", "3.5.33", "3.6.1", "3.7.1"])
def test_a_release_at_or_after_its_lines_production_minimum_is_not_warned_about(version: str) -> None:
    assert releases.production_warning(version) is None
