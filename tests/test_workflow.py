"""The GitHub Actions workflow: linted by actionlint, and its structure and gate scripts checked.

actionlint (installed into .venv by requirements-dev.txt) checks the syntax, expressions, job
dependencies, action inputs of known actions, and runs shellcheck over every `run:` script when
shellcheck is on PATH (.ci/run installs it). The tests below pin what the issue asks of the
workflow, and run its bash gate scripts for real with the environment GitHub would give them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "pulumi.yml"
TOKENS = ("PULUMI_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN", "CLOUDFLARE_API_TOKEN")


def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def triggers() -> dict[str, Any]:
    document: dict[Any, Any] = workflow()
    # YAML 1.1 reads the key `on` as the boolean true.
    found: dict[str, Any] = document["on"] if "on" in document else document[True]
    return found


def job(name: str) -> dict[str, Any]:
    found: dict[str, Any] = workflow()["jobs"][name]
    return found


def step_using(job_name: str, action: str) -> dict[str, Any]:
    (found,) = [step for step in job(job_name)["steps"]
                if str(step.get("uses", "")).split("@")[0] == action]
    step: dict[str, Any] = found
    return step


def run_text(job_name: str) -> str:
    return "\n".join(step.get("run", "") for step in job(job_name)["steps"])


def actionlint() -> str | None:
    venv = ROOT / ".venv" / "bin" / "actionlint"
    return str(venv) if venv.exists() else shutil.which("actionlint")


# --- actionlint ---------------------------------------------------------------------------------

@pytest.mark.skipif(actionlint() is None,
                    reason="actionlint is not installed (requirements-dev.txt installs it)")
def test_the_workflow_passes_actionlint() -> None:
    binary = actionlint()
    assert binary is not None
    result = subprocess.run([binary, "-no-color", "-verbose", str(WORKFLOW)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    if shutil.which("shellcheck"):
        assert 'Rule "shellcheck" was disabled' not in result.stderr


# --- triggers and jobs -------------------------------------------------------------------------

def test_it_runs_on_pull_requests_and_pushes_to_main_never_on_pull_request_target() -> None:
    on = triggers()
    assert set(on) == {"pull_request", "push"}
    assert on["push"] == {"branches": ["main"]}
    assert workflow()["permissions"] == {"contents": "read"}


def test_the_tests_run_on_every_event_as_ci_runs_them_with_sudo() -> None:
    test = job("test")
    assert "if" not in test
    assert 'sudo --preserve-env=CI env "PATH=$PATH" bash .ci/run' in run_text("test")
    # .ci/run builds the Pulumi toolchain with Go: set up before it, kept on sudo's PATH.
    assert step_using("test", "actions/setup-go")["with"]["go-version"] == "1.26"


def test_the_preview_runs_on_pull_requests_after_the_tests_with_the_policy_pack_and_a_comment() -> None:
    preview = job("preview")
    assert set(preview["needs"]) == {"test", "preview-gate"}
    assert preview["if"] == "needs.preview-gate.outputs.ready == 'true'"
    assert job("preview-gate")["if"] == "github.event_name == 'pull_request'"
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}
    action = step_using("preview", "pulumi/actions")["with"]
    assert action["command"] == "preview"
    assert action["comment-on-pr"] is True
    assert action["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert action["policyPacks"] == "policy"
    assert action["stack-name"] == "${{ env.PULUMI_STACK }}"


def test_up_runs_only_on_pushes_to_main_after_the_tests_with_the_policy_pack() -> None:
    up = job("up")
    assert up["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert up["needs"] == ["test"]
    action = step_using("up", "pulumi/actions")["with"]
    assert action["command"] == "up"
    assert action["policyPacks"] == "policy"
    assert "comment-on-pr" not in action


@pytest.mark.parametrize("job_name", ["preview", "up"])
def test_the_program_and_the_policy_pack_are_installed_into_the_venvs_their_project_files_name(
        job_name: str) -> None:
    program = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]
    policy = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]
    script = run_text(job_name)
    assert f"python -m venv {program['virtualenv']}\n" in script
    assert f"python -m venv policy/{policy['options']['virtualenv']}\n" in script
    assert "policy/.venv/bin/pip install --quiet --requirement policy/requirements.txt" in script
    steps = [step.get("uses", step.get("run", "")) for step in job(job_name)["steps"]]
    install = next(index for index, step in enumerate(steps) if "policy/.venv" in step)
    assert install < next(index for index, step in enumerate(steps)
                          if step.startswith("pulumi/actions@"))


@pytest.mark.parametrize("job_name", ["preview", "up"])
def test_the_tokens_come_from_repository_secrets(job_name: str) -> None:
    env = job(job_name)["env"]
    assert env == {token: f"${{{{ secrets.{token} }}}}" for token in TOKENS}


def test_the_jobs_before_the_gate_never_see_a_token_value() -> None:
    # The test job runs the pull request's code; the gate only asks whether each secret is set.
    assert "secrets." not in yaml.safe_dump(job("test"))
    gate = yaml.safe_dump(job("preview-gate"))
    references = re.findall(r"secrets\.[A-Za-z_]+[^}]*", gate)
    assert sorted(references) == sorted(f"secrets.{token} != '' " for token in TOKENS)


def test_the_stack_defaults_to_dev_and_a_repository_variable_can_change_it() -> None:
    assert workflow()["env"]["PULUMI_STACK"] == "${{ vars.PULUMI_STACK || 'dev' }}"
    assert (ROOT / "Pulumi.dev.yaml").exists()


def test_the_policy_config_file_the_workflow_passes_exists() -> None:
    for name in ("preview", "up"):
        path = step_using(name, "pulumi/actions")["with"]["policyPackConfigs"]
        assert (ROOT / path).is_file(), path


# --- the gate scripts, run for real ------------------------------------------------------------

def run_step(job_name: str, step_id_or_name: str, env: dict[str, str],
             tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str, str]:
    (step,) = [step for step in job(job_name)["steps"]
               if step_id_or_name in (step.get("id"), step.get("name"))]
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("")
    summary.write_text("")
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output),
             "GITHUB_STEP_SUMMARY": str(summary), **env},
        capture_output=True, text=True, timeout=60, check=False)
    return result, output.read_text(), summary.read_text()


def gate_env(*, head: str = "acme/etcd-cluster", missing: tuple[str, ...] = ()) -> dict[str, str]:
    env = {"HEAD_REPO": head, "BASE_REPO": "acme/etcd-cluster"}
    env.update({f"HAS_{token}": "false" if token in missing else "true" for token in TOKENS})
    return env


def test_a_pull_request_from_the_repository_with_every_secret_is_previewed(tmp_path: Path) -> None:
    result, output, summary = run_step("preview-gate", "check", gate_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert output == "ready=true\n"
    assert result.stdout == summary == ""


def test_a_fork_pull_request_skips_the_preview_with_a_notice_naming_the_fork(
        tmp_path: Path) -> None:
    # Forks get no secrets at all.
    result, output, summary = run_step("preview-gate", "check",
                                       gate_env(head="someone/etcd-cluster", missing=TOKENS),
                                       tmp_path)
    assert result.returncode == 0, result.stderr
    assert output == "ready=false\n"
    assert result.stdout.startswith("::notice title=Pulumi preview skipped::pulumi preview "
                                     "skipped: this pull request comes from the fork "
                                     "someone/etcd-cluster")
    assert "The tests still run." in result.stdout
    assert summary.startswith("pulumi preview skipped: this pull request comes from the fork")


def test_missing_secrets_skip_the_preview_with_a_notice_naming_them(tmp_path: Path) -> None:
    result, output, _ = run_step("preview-gate", "check",
                                 gate_env(missing=("DIGITALOCEAN_TOKEN", "CLOUDFLARE_API_TOKEN")),
                                 tmp_path)
    assert result.returncode == 0, result.stderr
    assert output == "ready=false\n"
    assert ("the repository secrets DIGITALOCEAN_TOKEN CLOUDFLARE_API_TOKEN are not available "
            "to this run") in result.stdout
    assert "fork" not in result.stdout


def test_up_stops_with_an_error_naming_a_missing_secret(tmp_path: Path) -> None:
    env = {"PULUMI_ACCESS_TOKEN": "pul-x", "DIGITALOCEAN_TOKEN": "", "CLOUDFLARE_API_TOKEN": "cf"}
    result, _, _ = run_step("up", "Check the secrets", env, tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("::error title=pulumi up cannot run::the repository secrets "
                                    "DIGITALOCEAN_TOKEN are not set")


def test_up_goes_ahead_with_every_secret_set(tmp_path: Path) -> None:
    env = {token: "value" for token in TOKENS}
    result, _, _ = run_step("up", "Check the secrets", env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
