"""The etcd releases scripts/build-etcd-releases builds from Go modules are what its contract says.

The contract (others rely on it): the directory it prints, `$ETCD_BUILT_RELEASES`, holds one
directory per version of toolchain/etcd-versions.env, named exactly `<version>`, with exactly
`bin/{etcd,etcdctl,etcdutl}` (each reporting that version) and the upstream-layout tarball
`etcd-v<version>-linux-amd64.tar.gz` (top directory `etcd-v<version>-linux-amd64/` with the three
binaries) and its `.sha256`. The checks of the build's output use the variable, else the
script's cache (`--cached`), and skip when neither has the releases (CI sets the variable:
.ci/run builds the releases, and under CI a skip fails the run).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import realcheck

SCRIPT = realcheck.REPO / "scripts" / "build-etcd-releases"
VERSIONS_FILE = realcheck.REPO / "toolchain" / "etcd-versions.env"
TOOLS = ("etcd", "etcdctl", "etcdutl")


def pinned_versions() -> list[str]:
    """ETCD_BUILD_VERSIONS as the script reads it (the file sourced by sh)."""
    done = subprocess.run(["sh", "-c", f'. {shlex.quote(str(VERSIONS_FILE))} && echo "$ETCD_BUILD_VERSIONS"'],
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()


def test_the_pinned_versions_are_one_per_line_and_include_the_default() -> None:
    from model.releases import DEFAULT_VERSION, version_line

    versions = pinned_versions()
    lines = [version_line(version) for version in versions]
    assert len(set(lines)) == len(lines), versions
    assert DEFAULT_VERSION in versions, (DEFAULT_VERSION, versions)
    assert {"3.6", "3.7"} <= set(lines), versions


def test_the_build_script_is_shellcheck_clean() -> None:
    shellcheck = realcheck.require_tool("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, "--severity=style", "-x", str(SCRIPT)], cwd=realcheck.REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cached_on_an_empty_cache_exits_3_and_says_how_to_build(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("`go` not found: the releases are built with Go (https://go.dev/doc/install)")
    env = {**os.environ, "ETCD_RELEASES_CACHE": str(tmp_path)}
    done = subprocess.run([str(SCRIPT), "--cached"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done
    assert done.stdout == "" and "run scripts/build-etcd-releases" in done.stderr, done
    assert list(tmp_path.iterdir()) == [], "--cached must not build or create anything"


def built_root() -> Path:
    root, reason = realcheck.built_releases_or_reason()
    if root is None:
        pytest.skip(reason)
    return root


def reported_version(binary: Path) -> str:
    if binary.name == "etcd":
        return realcheck.etcd_version_of(binary)
    done = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30)
    prefix = f"{binary.name} version: "
    found = [line.removeprefix(prefix) for line in done.stdout.splitlines() if line.startswith(prefix)]
    return found[0].strip() if found else ""


@pytest.mark.real
@pytest.mark.parametrize("version", pinned_versions())
def test_each_built_version_is_what_the_contract_says(version: str) -> None:
    root = built_root()
    directory = root / version
    name = f"etcd-v{version}-linux-amd64"
    assert directory.is_dir(), f"{root} has no {version}/ (built: {sorted(p.name for p in root.iterdir())})"
    assert sorted(entry.name for entry in directory.iterdir()) == sorted(
        ["bin", f"{name}.tar.gz", f"{name}.tar.gz.sha256"])
    assert sorted(entry.name for entry in (directory / "bin").iterdir()) == sorted(TOOLS)
    for tool in TOOLS:
        binary = directory / "bin" / tool
        assert os.access(binary, os.X_OK), binary
        assert reported_version(binary) == version, f"{binary} does not report {version}"

    tarball, sha256 = realcheck.built_release_tarball(version)
    assert tarball == directory / f"{name}.tar.gz"
    assert sha256 == hashlib.sha256(tarball.read_bytes()).hexdigest()
    with tarfile.open(tarball) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert sorted(members) == sorted([name, *(f"{name}/{tool}" for tool in TOOLS)])
        assert members[name].isdir()
        for tool in TOOLS:
            member = members[f"{name}/{tool}"]
            assert member.isfile() and member.mode & 0o755 == 0o755, (tool, oct(member.mode))
            packed = archive.extractfile(member)
            assert packed is not None
            assert packed.read() == (directory / "bin" / tool).read_bytes(), (
                f"{tarball}: {tool} differs from bin/{tool}")


@pytest.mark.real
@pytest.mark.parametrize("line", realcheck.BUILT_LINES)
def test_the_harness_finds_the_built_lines(line: str) -> None:
    built_root()
    binary, reason = realcheck.built_binary_or_reason(line, "etcd")
    assert binary is not None, reason
    assert realcheck.etcd_version_of(binary).startswith(f"{line}.")
    assert binary.parent.parent.name in pinned_versions()
