"""How long the commands take to print their --help (issue: ≤ 2 s): heavy libraries are imported where used.

    python benchmarks/bench_startup.py --repeats 5

Prints the median and range of wall seconds per command, and the 1-minute load average before and after (a busy
machine slows every start-up; compare numbers taken at similar loads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "adir-run --help": ["adir_exp.cli.run", "--help"],
    "adir-bench --help": ["adir_exp.cli.bench", "--help"],
    "adir-bench-merge --help": ["-c", "from adir_exp.cli.bench import merge; merge()", "--help"],
    "adir-bench-report --help": ["-c", "from adir_exp.cli.bench import report; report()", "--help"],
    "adir-index --help": ["adir_exp.cli.index", "--help"],
}


def seconds(arguments: list[str]) -> float:
    command = [sys.executable, *(arguments if arguments[0] == "-c" else ["-m", *arguments])]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    print(f"{'command':<28}{'median s':>10}{'min s':>8}{'max s':>8}")
    for name, arguments in COMMANDS.items():
        seconds(arguments)  # warm the file cache
        times = [seconds(arguments) for _ in range(args.repeats)]
        print(f"{name:<28}{statistics.median(times):>10.2f}{min(times):>8.2f}{max(times):>8.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
