"""Shared fixtures. `program` runs the Pulumi program under mocks (see tests/program.py)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

# The project's packages (model, cloudinit, components) and the test helpers (program, tls_mock) import
# by their plain names, as tests/ modules do (`import realcheck`).
ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from program import DEFAULT_STACK, ProgramRun, run_program  # noqa: E402

# The provider SDKs warn about their own deprecated modules when imported; import them once here,
# quietly, so those warnings do not bury the ones about this project.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_cloudflare  # noqa: F401
    import pulumi_digitalocean  # noqa: F401


class RunProgram(Protocol):
    def __call__(self, config: Mapping[str, Any] | None = None, stack: str = DEFAULT_STACK, *,
                 base: bool = True) -> ProgramRun: ...


def _key(config: Mapping[str, Any] | None, stack: str, base: bool) -> str:
    return repr((sorted((config or {}).items(), key=lambda item: item[0]), stack, base))


@pytest.fixture(scope="session")
def program() -> Callable[..., ProgramRun]:
    """Run the program with `config` (etcd-cluster:* keys, bare or namespaced, on top of a valid
    base configuration) as `stack`; returns the recorded run, or raises `ProgramError`.

    Successful runs are remembered for the session: the same configuration is evaluated once
    however many tests look at it (tests only read a run, never change it).
    """
    runs: dict[str, ProgramRun] = {}

    def run(config: Mapping[str, Any] | None = None, stack: str = DEFAULT_STACK, *,
            base: bool = True) -> ProgramRun:
        key = _key(config, stack, base)
        if key not in runs:
            runs[key] = run_program(config, stack, base=base)
        return runs[key]

    return run


@pytest.fixture(scope="session")
def local_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local backends' base image (built once per session unless $ETCD_LOCAL_IMAGE_DIR has
    one); skips naming what is missing to build it."""
    from guests.image import image_or_skip
    return image_or_skip(tmp_path_factory)


@pytest.fixture(scope="session")
def etcd_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An etcd 3.5.1 release tarball built from the real binaries: the directory to serve to
    members, and the tarball's SHA-256."""
    from guests.commands import build_release_tarball
    from guests.local_cluster import etcd_bin_dir
    directory = tmp_path_factory.mktemp("release")
    _tarball, sha256 = build_release_tarball(etcd_bin_dir(), directory)
    return directory, sha256


# --- two at a time -------------------------------------------------------------------------
# scripts/test runs the tests in two processes (pytest-xdist). The tests that boot QEMU VMs
# under the real engine are one unit of work, run one after another by one process and first
# (they are the longest, and their VMs take every core they can); every other module is a unit
# of its own (its module-scoped clusters are started once), run by the other process meanwhile:
# most of those wait on etcd, not on the cores.
VM_MODULES = ("test_engine_clusters.py", "test_engine_local.py")
VM_UNIT = "qemu-vms"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in VM_MODULES)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduling by module, the VM modules one unit, in collection order (the VM unit
    first). (Its `loadgroup` marks a group by rewriting test IDs, which pytest 9.2's no longer
    allow.)"""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ByModule(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return VM_UNIT if Path(module).name in VM_MODULES else module

    config.option.loadscopereorder = False
    return ByModule(config, log)


# --- under CI a skip is a failure -----------------------------------------------------------
# Outside CI a test that cannot run here (no root, a tool not installed) skips with a reason. CI
# installs everything (.ci/run), so there a skip means a check did not run: the run fails, with
# every skip and its reason listed. xfail is not a skip (pytest reports it as skipped with
# `wasxfail`); deselected tests are not counted.

_ci_skips: list[tuple[str, str]] = []  # (node id, reason) of every skip in this session


def ci_requires_no_skips() -> bool:
    """Whether this run is CI's ($CI is "true" or "1", as GitHub Actions and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _ci_skips.append((report.nodeid, _skip_reason(report)))


def pytest_configure(config: pytest.Config) -> None:
    _ci_skips.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if ci_requires_no_skips() and _ci_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not ci_requires_no_skips() or not _ci_skips:
        return
    terminalreporter.section("skipped under CI: the run fails", sep="=", red=True, bold=True)
    for nodeid, reason in _ci_skips:
        terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)
    terminalreporter.line(f"{len(_ci_skips)} test(s) skipped with CI={os.environ.get('CI')}: CI "
                          "installs everything (.ci/run), so every skip is a check that did not run.",
                          red=True)
