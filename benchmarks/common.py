"""What every benchmark script shares: the machine's description and the RESULTS.md rows."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = """# Benchmark results

Rows are appended by `make bench` (benchmarks/run_all.py) and by the scripts in benchmarks/
(`--append-results`); rerun the command to reproduce.

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
    if torch.cuda.is_available():
        where += f", {torch.cuda.get_device_name()}"
    return where


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def command_line(script: str) -> str:
    """The command that reproduces this run: `python benchmarks/<script> <args>` without --append-results."""
    return f"python benchmarks/{script}" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:] if a != "--append-results")


def result_lines(rows: list[tuple[str, str]], command: str) -> list[str]:
    """Rows (metric, value) as RESULTS.md table lines: today's date, this machine, `command`."""
    date, where = datetime.date.today().isoformat(), machine()
    return [f"| {date} | {where} | `{command}` | {metric} | {value} |" for metric, value in rows]


def append_results(rows: list[tuple[str, str]], command: str) -> None:
    """Add rows (metric, value) to RESULTS.md, dated, with this machine and `command`."""
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as f:
        f.write("\n".join(result_lines(rows, command)) + "\n")


class ProgressRows(list):
    """The rows (metric, value) of a long benchmark, each printed to stderr as it is measured, one
    line apiece (readable in a log file), so minutes of measuring are never silent."""

    def append(self, row: tuple[str, str]) -> None:
        print(f"  measured {row[0]}: {row[1]}", file=sys.stderr, flush=True)
        super().append(row)


def report(script: str, rows: list[tuple[str, str]], append: bool) -> None:
    """Print rows (metric, value) as a dated markdown table; with `append`, add them to RESULTS.md."""
    command = command_line(script)
    print("| date | machine | command | metric | value |\n| --- | --- | --- | --- | --- |")
    print("\n".join(result_lines(rows, command)))
    if append:
        append_results(rows, command)
        print(f"appended {len(rows)} rows to {RESULTS}")


# ---------------------------------------------------------------------- the machine's peak and counted FLOPs
def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, size: int | None = None,
                repeats: int = 5) -> float:
    """Measured matmul peak in FLOP/s: the best of `repeats` timed [size,size] @ [size,size] products
    on `device` in `dtype`, with torch's current CPU threads. Size defaults to 2048 on a CPU, 8192 on
    a GPU, where each timing covers 10 products (one lasts about a millisecond)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    products = 10 if device.type == "cuda" else 1
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b  # warm-up (kernel selection, first-touch allocation)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(products):
            a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return products * 2 * size**3 / best


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's FlopCounterMode knows the CUDA attention kernels but not the CPU one: count it the same way.
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def count_flops(fn, *args) -> int:
    """FLOPs of one call fn(*args), counted op by op (matmuls, convolutions, attention), not estimated."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        fn(*args)
    return counter.get_total_flops()
