"""Under CI a skipped test fails the run (tests/conftest.py); outside CI a skip stays a skip.

Each case runs a child pytest with this suite's own conftest (`-p conftest`) on a tiny test
that skips because a tool is hidden from it: PATH does not reach `etcd`, as on a machine where
the Debian package etcd-server is not installed. xfail is pytest's other "skipped" outcome and
must not count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ci_requires_no_skips

TESTS = Path(__file__).resolve().parent
REASON = "`etcd` not found: install the Debian package `etcd-server`"

PROBE = f'''
import shutil

import pytest


def test_runs_etcd():
    if shutil.which("etcd") is None:
        pytest.skip({REASON!r})


@pytest.mark.xfail(reason="a known failure, not a skip", strict=True)
def test_known_failure():
    assert False


def test_plain():
    assert True
'''


def child_pytest(tmp_path: Path, name: str, ci: str | None, hide_etcd: bool) -> subprocess.Popen[str]:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "test_probe.py").write_text(PROBE)
    (directory / "pytest.ini").write_text("[pytest]\n")  # rootdir here, not this project's ini
    env = {key: value for key, value in os.environ.items()
           if key not in ("CI", "PYTEST_ADDOPTS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(TESTS)
    if ci is not None:
        env["CI"] = ci
    if hide_etcd:
        env["PATH"] = str(directory)  # nothing in it: no etcd (the interpreter is run by path)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "conftest", "-p", "no:cacheprovider",
         "test_probe.py"],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_skip_fails_the_run_under_ci_and_only_there(tmp_path: Path) -> None:
    if shutil.which("etcd") is None:
        pytest.fail("the control case needs `etcd` on PATH (Debian package etcd-server)")
    runs = {name: child_pytest(tmp_path, name, ci, hide)
            for name, ci, hide in (("ci-true-hidden", "true", True), ("no-ci-hidden", None, True),
                                   ("ci-true-present", "true", False))}
    done = {}
    for name, process in runs.items():
        output, _ = process.communicate(timeout=300)
        done[name] = (process.returncode, output)

    code, output = done["ci-true-hidden"]
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "skipped under CI: the run fails" in output, output
    assert f"SKIPPED test_probe.py::test_runs_etcd: {REASON}" in output, output
    assert "1 test(s) skipped" in output, output  # the xfail is not counted
    assert "1 passed, 1 skipped, 1 xfailed" in output, output
    # Outside CI the same skip is a skip.
    code, output = done["no-ci-hidden"]
    assert code == pytest.ExitCode.OK, output
    assert "1 passed, 1 skipped, 1 xfailed" in output, output
    assert "skipped under CI" not in output, output
    # The control: under CI with etcd reachable nothing skips, and an xfail alone passes the run.
    code, output = done["ci-true-present"]
    assert code == pytest.ExitCode.OK, output
    assert "2 passed, 1 xfailed" in output, output
    assert "skipped under CI" not in output, output


@pytest.mark.parametrize(("value", "is_ci"), [("true", True), ("1", True), ("TRUE", True),
                                              ("false", False), ("0", False), ("", False),
                                              (None, False)])
def test_ci_is_true_or_1(monkeypatch: pytest.MonkeyPatch, value: str | None, is_ci: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert ci_requires_no_skips() is is_ci
