"""Simulator benchmark: loan-days simulated per second, and the issue's yardstick.

Runs `duecourse simulate` (the same function) on a synthetic portfolio into a temporary
directory and prints loans, days, rows written, seconds and loan-days per second. The
issue asks that 10,000 loans over 180 days finish in under 3 minutes on 2 cores; that is
the default run, and `--limit` (seconds) makes the script exit 1 when it is slower.

    python benchmarks/simulate.py                      # 10000 loans x 180 days, 2 processes
    python benchmarks/simulate.py --loans 2000 --days 90 --workers 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duecourse.lab.simulator import simulate

YARDSTICK_SECONDS = 180.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--limit", type=float, default=YARDSTICK_SECONDS,
                        help="fail (exit 1) when the run takes longer (seconds)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="duecourse-sim-") as tmp:
        result = simulate(Path(tmp), args.loans, args.days, args.seed, policy=args.policy,
                          experiment=args.experiment, workers=args.workers)
        size = result.ledger.stat().st_size / 1e6
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
    print(f"{args.loans} loans x {args.days} days on {args.workers} process(es): "
          f"{result.seconds:.1f} s, {result.loan_days_per_second:,.0f} loan-days/s, "
          f"{result.rows:,} rows ({size:.0f} MB); {outcomes}")
    if result.seconds > args.limit:
        print(f"slower than the {args.limit:.0f} s limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
