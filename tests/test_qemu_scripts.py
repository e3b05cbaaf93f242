"""machines/qemu/create-vm and delete-vm: the contract of machines/README.md.

The fast tests need no VM: shellcheck, refusals with clear messages, delete's idempotence and its
identity check before signalling. The real test starts QEMU on the base image with a boot that
never finishes: create gives up at its timeout and leaves nothing running. (A whole boot, the
files' modes and delete are checked where the engine runs these scripts: the local stack's
lifecycle test, tests/test_engine_local.py.)
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from guests import qemu
from realcluster import cleanup

REQUIRED = ["ETCD_VM_NAME", "ETCD_VM_STATE_DIR", "ETCD_VM_CPUS", "ETCD_VM_MEMORY_MIB",
            "ETCD_VM_DATA_DISK_GIB", "ETCD_VM_MAC", "ETCD_VM_META_DATA", "ETCD_VM_NETWORK_CONFIG",
            "ETCD_VM_BOOT_TIMEOUT", "ETCD_VM_IMAGE_DIR", "ETCD_VM_BRIDGE", "ETCD_VM_ACCEL"]
# cloud-init's init stage runs bootcmd and waits for it: final is never reached.
NEVER_FINISHES = "#cloud-config\nbootcmd:\n  - [sleep, infinity]\n"
USER_DATA = "#cloud-config\nwrite_files:\n  - path: /run/etcd-qemu-test\n    content: booted\n"


def environment(state_dir: Path, name: str = "eqt-fast-vm") -> dict[str, str]:
    # No VM is booted with it: the image directory need not exist.
    return qemu.vm_environment(name, state_dir, mac="52:54:00:00:00:01",
                               address="192.0.2.10/24", gateway="192.0.2.1",
                               image_dir=state_dir.parent / "image")


# A process that is not QEMU and writes down every signal it gets. SIGRTMIN is the test's
# barrier: real-time signals are delivered after every pending standard one (TERM, INT, HUP,
# QUIT, USR1, USR2), so once the barrier is written any signal sent before it has been too.
SIGNAL_RECORDER = """
import signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
def record(number, frame):
    log.write(signal.Signals(number).name + "\\n")
for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGRTMIN"):
    signal.signal(getattr(signal, name), record)
log.write("ready\\n")
while True:
    time.sleep(600)
"""


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A process that is not QEMU and records its signals (in the returned file); killed at the
    end whatever happened."""
    record = tmp_path / "signals"
    process = subprocess.Popen([sys.executable, "-c", SIGNAL_RECORDER, str(record)])
    deadline = time.monotonic() + 60
    while "ready" not in (record.read_text() if record.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, "the recorder did not start"
        time.sleep(0.02)
    yield process, record
    process.kill()
    process.wait()


def signals_received(process: subprocess.Popen[bytes], record: Path) -> list[str]:
    """Every signal `process` got before now (the barrier sent and handled first)."""
    os.kill(process.pid, signal.SIGRTMIN)
    deadline = time.monotonic() + 60
    while "SIGRTMIN" not in record.read_text():
        if process.poll() is not None:
            return [*record.read_text().split()[1:], f"exited ({process.returncode})"]
        assert time.monotonic() < deadline, "the recorder never handled the barrier"
        time.sleep(0.02)
    return [name for name in record.read_text().split()[1:] if name != "SIGRTMIN"]


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = qemu.which("shellcheck")
    if shellcheck is None:
        pytest.skip("`shellcheck` not found: install the Debian package `shellcheck`")
    scripts = [qemu.CREATE, qemu.DELETE]
    for extra in ([], ["-x"]):
        done = subprocess.run([shellcheck, *extra, *scripts], cwd=qemu.ROOT, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    for script in scripts:
        assert os.access(qemu.ROOT / script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("variable", REQUIRED)
def test_create_names_the_missing_variable(tmp_path: Path, variable: str) -> None:
    env = environment(tmp_path / "vms" / "eqt-fast-vm")
    del env[variable]
    done = qemu.run_script(qemu.CREATE, env, USER_DATA)
    assert done.returncode != 0
    assert f"environment variable {variable} is not set" in done.stderr
    assert "booted" not in done.stdout + done.stderr, "the user-data was printed"
    assert not (tmp_path / "vms").exists()


@pytest.mark.parametrize(("variable", "value"), [("ETCD_VM_ACCEL", "hvf"),
                                                 ("ETCD_VM_MEMORY_MIB", "2G")])
def test_create_refuses_bad_values(tmp_path: Path, variable: str, value: str) -> None:
    env = {**environment(tmp_path / "vms" / "eqt-fast-vm"), variable: value}
    done = qemu.run_script(qemu.CREATE, env, USER_DATA)
    assert done.returncode != 0
    assert variable in done.stderr and value in done.stderr
    assert not (tmp_path / "vms").exists()


def test_create_refuses_a_missing_image(tmp_path: Path) -> None:
    if qemu.which("qemu-img") is None or qemu.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU is not installed (qemu-system-x86, qemu-utils)")
    env = {**environment(tmp_path / "vms" / "eqt-fast-vm"),
           "ETCD_VM_IMAGE_DIR": str(tmp_path / "no-image")}
    done = qemu.run_script(qemu.CREATE, env, USER_DATA)
    assert done.returncode != 0
    assert "no-image does not exist" in done.stderr
    assert not (tmp_path / "vms").exists()


def test_delete_of_a_never_created_vm_succeeds(tmp_path: Path) -> None:
    state = tmp_path / "vms" / "eqt-fast-vm"
    for _ in range(2):
        done = qemu.run_script(qemu.DELETE, environment(state))
        assert done.returncode == 0, done.stderr
    assert not state.exists()


def test_delete_leaves_a_process_that_is_not_its_qemu(
        tmp_path: Path, sleeper: tuple[subprocess.Popen[bytes], Path]) -> None:
    """The pidfile names a live process whose command line lacks the VM's name (the PID was
    reused): delete must not signal it, and still removes the state directory."""
    process, record = sleeper
    state = tmp_path / "vms" / "eqt-fast-vm"
    (state / "seed").mkdir(parents=True)
    (state / "qemu.pid").write_text(f"{process.pid}\n")
    (state / "console.log").write_text("old\n")
    done = qemu.run_script(qemu.DELETE, environment(state))
    assert done.returncode == 0, done.stderr
    assert signals_received(process, record) == [], "delete signalled a process that is not the VM"
    assert not state.exists()


def test_the_signal_recorder_sees_a_sigterm(sleeper: tuple[subprocess.Popen[bytes], Path]) -> None:
    # The control for the test above: a SIGTERM sent before the barrier is recorded.
    process, record = sleeper
    os.kill(process.pid, signal.SIGTERM)
    assert signals_received(process, record) == ["SIGTERM"]


def test_delete_stops_its_vm_process(tmp_path: Path) -> None:
    """A process whose command line has `-name NAME` (as the VM's QEMU does) is stopped."""
    state = tmp_path / "vms" / "eqt-fast-vm"
    state.mkdir(parents=True)
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                             "-name", "eqt-fast-vm"])
    try:
        (state / "qemu.pid").write_text(f"{fake.pid}\n")
        done = qemu.run_script(qemu.DELETE, environment(state))
        assert done.returncode == 0, done.stderr
        assert fake.wait(timeout=10) == -signal.SIGTERM
        assert not state.exists()
    finally:
        fake.kill()
        fake.wait()


def test_delete_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    state = tmp_path / "not-a-vm"
    state.mkdir()
    (state / "precious.txt").write_text("keep me\n")
    done = qemu.run_script(qemu.DELETE, environment(state))
    assert done.returncode != 0
    assert "precious.txt" in done.stderr
    assert (state / "precious.txt").read_text() == "keep me\n"


@pytest.mark.real
def test_create_that_fails_after_starting_qemu_stops_it(tmp_path: Path, local_image: Path) -> None:
    """Cloud-init never finishes (its bootcmd blocks for ever, however fast the machine): create
    gives up at its timeout, stops its QEMU, removes the disks and the seed (private keys) and
    keeps only the console log, which delete then removes."""
    missing = qemu.missing_for_real_vm(local_image)
    if missing:
        pytest.skip(missing)
    name = f"eqt{os.getpid()}-fail"
    state = tmp_path / "vms" / name
    network = qemu.BridgeNamespace(ipaddress.IPv4Network("192.168.235.0/24"))
    env = qemu.vm_environment(name, state, mac="52:54:00:e7:c0:02",
                              address=f"{network.host(10)}/24", gateway=network.gateway,
                              image_dir=local_image, accel="tcg", boot_timeout=5)

    def undo() -> None:
        if state.exists():
            network.run(qemu.DELETE, env, timeout=120)
            qemu.kill_vm(state, name)
        network.close()

    token = cleanup.register(f"QEMU VM {name} and namespace {network.name}", undo)
    try:
        created = network.run(qemu.CREATE, env, NEVER_FINISHES, timeout=300)
        assert created.returncode != 0
        assert "cloud-init did not finish within 5 s" in created.stderr
        assert "started (pid" in created.stderr, "QEMU never started: not the case under test"
        assert [entry.name for entry in state.iterdir()] == ["console.log"]
        pid = int(created.stderr.split("started (pid ")[1].split(",")[0])
        assert not qemu.is_vm_process(pid, name), f"create left QEMU (pid {pid}) running"
        deleted = network.run(qemu.DELETE, env, timeout=120)
        assert deleted.returncode == 0, deleted.stderr
        assert not state.exists()
    finally:
        cleanup.run(token)
