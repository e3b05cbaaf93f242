"""The policy pack (policy/) passes its own tests in its own virtualenv, against this program.

pulumi-policy pins an older protobuf than the program's provider SDKs, so the pack lives in
policy/.venv and its tests run there, as a subprocess. This run records the real program's
resources under mocks and hands them over (ETCD_POLICY_PROGRAM_RUN), so the policies are also
checked against exactly what the program registers. .ci/run creates policy/.venv; without it the
tests here skip, naming what to install.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from program import ProgramRun

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policy"
POLICY_PYTHON = POLICY_DIR / ".venv" / "bin" / "python"
INSTALL = ("python3 -m venv policy/.venv && policy/.venv/bin/pip install -r "
           "policy/requirements-dev.txt (.ci/run does this)")

needs_policy_venv = pytest.mark.skipif(
    not POLICY_PYTHON.exists(), reason=f"policy/.venv is missing: {INSTALL}")


def recording(run: ProgramRun) -> dict[str, Any]:
    """What the engine would hand the policy pack: every resource with its inputs (secret ones
    marked as on the wire), options, parent, dependencies and outputs."""
    return {
        "project": run.project,
        "stack": run.stack,
        "resources": [
            {
                "type": reg.type,
                "name": reg.name,
                "urn": reg.urn,
                "parent": reg.parent,
                "custom": reg.custom,
                "protect": reg.protect,
                "ignoreChanges": list(reg.ignore_changes),
                "additionalSecretOutputs": list(reg.additional_secret_outputs),
                "dependencies": list(reg.dependencies),
                "propertyDependencies": {key: list(urns)
                                         for key, urns in reg.property_dependencies.items()},
                "inputs": reg.inputs,
                "secretInputs": sorted(reg.secret_inputs),
                "outputs": reg.outputs,
            }
            for reg in run.registrations
        ],
    }


@needs_policy_venv
def test_the_policy_pack_tests_pass_in_the_policy_venv_against_this_program(
        program: Any, tmp_path: Path) -> None:
    run: ProgramRun = program()
    recorded = tmp_path / "program-run.json"
    recorded.write_text(json.dumps(recording(run), default=str))
    report = tmp_path / "policy-tests.xml"
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["ETCD_POLICY_PROGRAM_RUN"] = str(recorded)
    result = subprocess.run(
        [str(POLICY_PYTHON), "-m", "pytest", "-q", f"--junitxml={report}", "tests"],
        cwd=POLICY_DIR, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")  # type: ignore[assignment]
    assert suite is not None, output
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    # Every rule has tests, and none skipped: the program recording reached them.
    assert counts["tests"] >= 100, counts
    assert counts == {**counts, "failures": 0, "errors": 0, "skipped": 0}, output


@needs_policy_venv
def test_the_policy_venv_has_the_pinned_pulumi_policy_and_its_older_protobuf() -> None:
    script = ("import importlib.metadata as m, json; print(json.dumps({name: m.version(name) "
              "for name in ('pulumi-policy', 'protobuf', 'pulumi')}))")
    versions = json.loads(subprocess.run([str(POLICY_PYTHON), "-c", script], capture_output=True,
                                         text=True, check=True, timeout=120).stdout)
    assert versions["pulumi-policy"] == "1.21.0"
    assert versions["protobuf"].startswith("5.29.")
    # The reason for a venv of its own: the program's venv resolves a newer protobuf.
    assert int(importlib.metadata.version("protobuf").split(".")[0]) > 5


def test_the_policy_requirements_pin_pulumi_policy_and_protobuf() -> None:
    lines = {line.strip() for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"pulumi-policy==1.21.0", "protobuf~=5.29.5"} <= lines
