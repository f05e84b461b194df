"""What every benchmark script shares: the machine's description and the RESULTS.md rows."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = """# Benchmark results

Rows are appended by the scripts in benchmarks/ (`--append-results`); rerun the command to reproduce.

| date | machine | command | metric | value |
| --- | --- | --- | --- | --- |
"""


def machine() -> str:
    """CPU model, core count and OS, plus the GPU's name when torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = f"{cpu}, {os.cpu_count()} cores, {platform.system()}"
    try:
        import torch

        if torch.cuda.is_available():
            where += f", {torch.cuda.get_device_name()}"
    except ImportError:
        pass
    return where


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def report(script: str, rows: list[tuple[str, str]], append: bool) -> None:
    """Print rows (metric, value) as a dated markdown table; with `append`, add them to RESULTS.md."""
    command = f"python benchmarks/{script}" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:] if a != "--append-results")
    date, where = datetime.date.today().isoformat(), machine()
    lines = [f"| {date} | {where} | `{command}` | {metric} | {value} |" for metric, value in rows]
    print("| date | machine | command | metric | value |\n| --- | --- | --- | --- | --- |")
    print("\n".join(lines))
    if append:
        if not RESULTS.exists():
            RESULTS.write_text(HEADER)
        with RESULTS.open("a") as f:
            f.write("\n".join(lines) + "\n")
        print(f"appended {len(lines)} rows to {RESULTS}")
