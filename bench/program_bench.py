"""Benchmark of the Pulumi program under mocks (run: .venv/bin/python bench/program_bench.py).

Prints, per member count (1, 3, 5, 7):
- program evaluation time: median wall time of `run_program` (whole program under Pulumi mocks,
  outputs resolved) over several runs, with the REAL tls mock (a fresh ECDSA P-256 key per
  PrivateKey, real certificates), after one warm-up run that pays the imports;
- resources registered (custom resources, and all registrations incl. components and the stack);
- the creation depth: the longest chain of resource creations that must happen one after
  another, from the recorded dependencies (explicit and property dependencies; component
  resources are not creations). It must not grow with member count: members are created in
  parallel, never one after another. The script exits 1 if it grows.
- user-data bytes per member for ecdsa-p256 and rsa-4096 keys, against DigitalOcean's 64 KiB
  limit. The rsa-4096 runs use the key-reusing tls mock variant (one 4096-bit key reused by
  every PrivateKey; certificates still made and signed for real), since fresh 4096-bit keys take
  ~0.6 s each and PEM sizes depend only on the key size; `--fresh-rsa-keys` generates them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

# The project (model, cloudinit, components) and its test harness (tests/program.py, tests/tls_mock.py).
ROOT = Path(__file__).resolve().parent.parent
for directory in (ROOT, ROOT / "tests"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from program import ProgramError, ProgramRun, run_program  # noqa: E402
from tls_mock import TlsMock  # noqa: E402

MEMBER_COUNTS = (1, 3, 5, 7)
USER_DATA_LIMIT = 64 * 1024


def timed_run(config: dict[str, object], tls: TlsMock | None = None) -> tuple[float, ProgramRun]:
    start = time.perf_counter()
    run = run_program(config, tls=tls)
    return time.perf_counter() - start, run


def user_data_sizes(run: ProgramRun) -> list[int]:
    return [len(user_data.encode()) for user_data in run.user_data.values()]


def size_cell(sizes: list[int]) -> str:
    if not sizes:
        return "-"
    low, high = min(sizes), max(sizes)
    text = f"{low}" if low == high else f"{low}-{high}"
    flag = " OVER LIMIT" if high > USER_DATA_LIMIT else ""
    return f"{text} ({100 * high / USER_DATA_LIMIT:.0f}%){flag}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per member count")
    parser.add_argument("--fresh-rsa-keys", action="store_true",
                        help="generate a fresh RSA-4096 key per PrivateKey (slow)")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        timed_run({"memberCount": 1})  # warm-up: imports of the provider SDKs

    print("Program evaluation under Pulumi mocks (tests/program.py)")
    print(f"  timing: real tls mock (fresh ECDSA P-256 keys), median of {args.repeat} runs, "
          "after a warm-up run")
    print()
    header = (f"{'members':>7}  {'median s':>8}  {'min s':>6}  {'custom':>6}  {'all':>4}  "
              f"{'depth':>5}  {'user-data bytes ecdsa-p256':>27}  {'user-data bytes rsa-4096':>27}")
    print(header)
    print("-" * len(header))

    depths: dict[int, int] = {}
    for count in MEMBER_COUNTS:
        config: dict[str, object] = {"memberCount": count}
        times: list[float] = []
        last: ProgramRun | None = None
        for _ in range(args.repeat):
            seconds, last = timed_run(config)
            times.append(seconds)
        assert last is not None
        depths[count] = last.creation_depth()
        rsa_tls = None if args.fresh_rsa_keys else TlsMock(reuse_keys=True)
        try:
            _, rsa_run = timed_run({**config, "keyAlgorithm": "rsa-4096"}, tls=rsa_tls)
            rsa_cell = size_cell(user_data_sizes(rsa_run))
        except ProgramError as failure:
            rsa_cell = f"refused: {type(failure.error).__name__}"
        print(f"{count:>7}  {statistics.median(times):>8.3f}  {min(times):>6.3f}  "
              f"{len(last.custom_resources):>6}  {len(last.registrations):>4}  "
              f"{depths[count]:>5}  {size_cell(user_data_sizes(last)):>27}  {rsa_cell:>27}")

    print()
    print(f"user-data limit: {USER_DATA_LIMIT} bytes (DigitalOcean); bytes are min-max over members"
          " (percent of the limit for the largest)")
    rsa_variant = ("fresh RSA-4096 keys" if args.fresh_rsa_keys
                   else "one reused RSA-4096 key (certificates real)")
    print(f"rsa-4096 column: {rsa_variant}")
    print("depth: longest chain of creations that must run one after another "
          "(custom resources; explicit and property dependencies)")
    print("  " + ", ".join(f"{count} members: {depth}" for count, depth in depths.items()))
    if len(set(depths.values())) != 1:
        print(f"FAIL: creation depth changes with member count: {depths}")
        return 1
    print("OK: creation depth does not grow with member count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
