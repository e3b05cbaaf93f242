"""Fault tolerance of the generated cluster, with real etcd members that are killed and stopped.

One cluster per (version, size), shared by the steps below in order; each step first brings
every member back, so a step never depends on how the previous one ended. Every write the
cluster acknowledges (etcdctl exit 0, through the exported endpoints and kube-apiserver client
certificate) goes into a ledger. The steps that claim "nothing acknowledged is lost" write
hundreds of keys of their own, through the fault, and check each of those (and the ledger) is
there afterwards, so each means something when run alone. Times are reported (stdout, JUnit
properties), never asserted.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from program import ProgramRun
from realcluster.harness import Cluster, Result
from realcluster.pytest_support import MATRIX, new_cluster, report

pytestmark = pytest.mark.real

PREFIX = "/registry/ledger/"


@dataclass
class Ledger:
    """Every write attempted, split into acknowledged and not."""

    cluster: Cluster
    acknowledged: dict[str, str] = field(default_factory=dict)
    unacknowledged: dict[str, str] = field(default_factory=dict)
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, names: Iterable[str] | None = None, command_timeout: float = 5) -> Result:
        return self.write_key(names, command_timeout)[1]

    def write_key(self, names: Iterable[str] | None = None,
                  command_timeout: float = 5) -> tuple[str, Result]:
        with self._lock:
            number = next(self._numbers)
        key, value = f"{PREFIX}{number:06d}", f"value-{number}-{time.time():.3f}"
        result = self.cluster.put(key, value, names, command_timeout=command_timeout)
        with self._lock:
            (self.acknowledged if result.ok else self.unacknowledged)[key] = value
        return key, result

    def missing_of(self, keys: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """Of `keys` (acknowledged writes), those that are not there with their value."""
        stored = self.cluster.get_prefix(PREFIX)
        return {key: (self.acknowledged[key], stored.get(key)) for key in keys
                if stored.get(key) != self.acknowledged[key]}

    def missing(self) -> dict[str, tuple[str, str | None]]:
        """Acknowledged writes that are not there (or not with their value)."""
        stored = self.cluster.get_prefix(PREFIX)
        return {key: (value, stored.get(key)) for key, value in self.acknowledged.items()
                if stored.get(key) != value}


class Writer:
    """Writes continuously from a thread (bounded in count and time) while a fault happens."""

    def __init__(self, ledger: Ledger, max_writes: int = 2000, max_seconds: float = 120) -> None:
        self.ledger = ledger
        self.results: list[tuple[float, Result]] = []
        self.acknowledged_keys: list[str] = []  # this writer's own acknowledged writes
        self._stop = threading.Event()
        self._max_writes, self._max_seconds = max_writes, max_seconds
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        for _ in range(self._max_writes):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            key, result = self.ledger.write_key(command_timeout=2)
            self.results.append((time.monotonic(), result))
            if result.ok:
                self.acknowledged_keys.append(key)
            time.sleep(0.02)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def acknowledged_after(self, moment: float) -> int:
        return sum(1 for at, result in self.results if at > moment and result.ok)

    def wait_acknowledged(self, count: int, after: float = 0.0, timeout: float = 180) -> None:
        """Until `count` writes were acknowledged after `after` (monotonic time)."""
        deadline = time.monotonic() + timeout
        while self.acknowledged_after(after) < count:
            assert self._thread.is_alive() and time.monotonic() < deadline, (
                f"only {self.acknowledged_after(after)} of {count} writes acknowledged:\n"
                f"{self.results[-1][1] if self.results else 'no write attempted'}")
            time.sleep(0.05)


@dataclass
class Faults:
    cluster: Cluster
    ledger: Ledger


@pytest.fixture(scope="module", params=MATRIX)
def faults(request: pytest.FixtureRequest, program: Callable[..., ProgramRun]) -> Iterator[Faults]:
    cluster = new_cluster(request, program, request.param)
    yield Faults(cluster, Ledger(cluster))


def everyone_up(cluster: Cluster) -> None:
    stopped = [name for name in cluster.names if not cluster.members[name].running]
    cluster.start(stopped)
    cluster.wait_ready(stopped, timeout=180)
    cluster.wait_healthy(timeout=180)


def wait_for_leader(cluster: Cluster, names: list[str], not_this: str | None = None,
                    timeout: float = 60) -> str:
    ids = cluster.member_ids()
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        leader = cluster.leader(names, ids)
        if leader is not None and leader != not_this:
            return leader
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"no leader (other than {not_this}) among {names} in {timeout}s\n"
                         f"{cluster.logs(names)}")


def test_writes_continue_when_a_follower_is_killed(faults: Faults) -> None:
    cluster, ledger = faults.cluster, faults.ledger
    everyone_up(cluster)
    leader = wait_for_leader(cluster, cluster.names)
    follower = next(name for name in reversed(cluster.names) if name != leader)
    cluster.members[follower].kill()
    # Through every exported endpoint, the dead one included, as kube-apiserver would.
    failed = [result for result in (ledger.write() for _ in range(20)) if not result.ok]
    assert not failed, f"writes failed with {follower} down:\n{failed[0]}"
    # The follower comes back and catches up (a serializable read is its own copy).
    cluster.start([follower])
    cluster.wait_ready([follower], timeout=180)
    cluster.wait_healthy(timeout=180)
    expected = dict(ledger.acknowledged)
    for _ in range(100):
        local = cluster.etcdctl("get", PREFIX, "--prefix", "--keys-only", "--consistency=s",
                                endpoints=cluster.endpoints([follower]))
        if local.ok and set(expected) <= set(local.stdout.split()):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{follower} did not catch up:\n{local}")


def test_a_new_leader_takes_over_when_the_leader_is_killed(
        faults: Faults, request: pytest.FixtureRequest) -> None:
    cluster, ledger = faults.cluster, faults.ledger
    everyone_up(cluster)
    leader = wait_for_leader(cluster, cluster.names)
    survivors = [name for name in cluster.names if name != leader]
    with Writer(ledger) as writer:
        time.sleep(0.5)
        killed_at = time.monotonic()
        cluster.members[leader].kill()
        new_leader = wait_for_leader(cluster, survivors, not_this=leader)
        failover = time.monotonic() - killed_at
        elected_at = time.monotonic()
        for _ in range(300):
            if writer.acknowledged_after(elected_at) >= 5:
                break
            time.sleep(0.1)
    assert writer.acknowledged_after(elected_at) >= 5, (
        f"writes did not resume under {new_leader}:\n{writer.results[-1][1]}")
    report(request, "leader failover seconds", round(failover, 3))
    report(request, "writes during failover (acknowledged/attempted)",
           f"{sum(result.ok for _, result in writer.results)}/{len(writer.results)}")
    cluster.start([leader])
    cluster.wait_ready([leader], timeout=180)
    cluster.wait_healthy(timeout=180)


# Each test below writes its own keys, hundreds, acknowledged before and after the fault while
# a writer keeps writing through it, and checks every one of those is there afterwards.
OWN_WRITES_BEFORE = 200


def test_without_a_majority_writes_fail_and_nothing_acknowledged_is_lost(
        faults: Faults, request: pytest.FixtureRequest) -> None:
    cluster, ledger = faults.cluster, faults.ledger
    everyone_up(cluster)
    majority = len(cluster.names) // 2 + 1
    stopped, survivors = cluster.names[:majority], cluster.names[majority:]
    with Writer(ledger, max_seconds=600) as writer:
        writer.wait_acknowledged(OWN_WRITES_BEFORE)
        cluster.stop(stopped)  # while the writer writes
        attempts = [ledger.write(survivors, command_timeout=2) for _ in range(3)]
        accepted = [result for result in attempts if result.ok]
        assert not accepted, f"a write was acknowledged without a majority:\n{accepted[0]}"
        read = cluster.etcdctl("get", PREFIX, "--prefix", "--keys-only",
                               endpoints=cluster.endpoints(survivors), command_timeout=2)
        assert not read.ok, f"a linearizable read succeeded without a majority:\n{read}"
        cluster.start(stopped)
        cluster.wait_ready(stopped, timeout=180)
        cluster.wait_healthy(timeout=180)
        back = time.monotonic()
        writer.wait_acknowledged(50, after=back)
    mine = writer.acknowledged_keys
    assert len(mine) >= OWN_WRITES_BEFORE + 50, len(mine)
    missing = ledger.missing_of(mine)
    assert not missing, f"{len(missing)} of {len(mine)} acknowledged writes lost: {sorted(missing)[:5]}"
    assert not ledger.missing(), ledger.missing()
    report(request, "write without majority", attempts[0].output.splitlines()[-1])
    report(request, "own acknowledged writes across the fault, all present", len(mine))


def test_every_acknowledged_write_survives_a_restart_of_every_member(
        faults: Faults, request: pytest.FixtureRequest) -> None:
    cluster, ledger = faults.cluster, faults.ledger
    everyone_up(cluster)
    with Writer(ledger, max_seconds=600) as writer:
        writer.wait_acknowledged(OWN_WRITES_BEFORE)
        cluster.stop()  # while the writer writes: the last acknowledgements race the stop
    mine = list(writer.acknowledged_keys)
    assert len(mine) >= OWN_WRITES_BEFORE
    started = time.monotonic()
    cluster.start()
    cluster.wait_ready(timeout=300)
    cluster.wait_healthy(timeout=300)
    report(request, "cold start of every member, seconds to healthy",
           round(time.monotonic() - started, 2))
    missing = ledger.missing_of(mine)
    assert not missing, f"{len(missing)} of {len(mine)} acknowledged writes lost: {sorted(missing)[:5]}"
    missing = ledger.missing()
    assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:5]}"
    report(request, "acknowledged writes, all present",
           f"{len(ledger.acknowledged)} (this test's own: {len(mine)}; unacknowledged attempts: "
           f"{len(ledger.unacknowledged)})")
