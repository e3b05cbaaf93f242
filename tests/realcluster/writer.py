"""A client writing throughout a day-2 operation, and what it lost: the check every rollout
test and bench makes (0 acknowledged writes lost, the longest gap between them)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from realcluster.harness import Cluster, Result


@dataclass
class Writer:
    """Writes one new key after another through every member, from a thread; keeps the time of
    every acknowledged write."""

    cluster: Cluster
    prefix: str
    acknowledged: dict[str, str] = field(default_factory=dict)
    acknowledged_at: list[float] = field(default_factory=list)
    failed: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def _run(self) -> None:
        while not self._stop.is_set():
            number = next(self._numbers)
            key, value = f"{self.prefix}{number:06d}", f"value-{number}"
            result = self.cluster.put(key, value, command_timeout=3)
            if result.ok:
                self.acknowledged[key] = value
                self.acknowledged_at.append(time.monotonic())
            else:
                self.failed.append(result)
            time.sleep(0.02)

    def __enter__(self) -> Writer:
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        target = len(self.acknowledged) + count
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < target:
            assert time.monotonic() < deadline, (
                f"writes stalled at {len(self.acknowledged)}: {self.failed[-1:]}")
            time.sleep(0.05)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without an acknowledged write between `start` and `end`."""
        times = [start, *(at for at in self.acknowledged_at if start <= at <= end), end]
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def lost(self) -> set[str]:
        stored = self.cluster.get_prefix(self.prefix)
        return {key for key, value in self.acknowledged.items() if stored.get(key) != value}
