"""The benchmark suite (`make bench`): one table with every suite row, and FLOPs counted, not guessed."""

import datetime
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402
from common import count_flops  # noqa: E402

GPU = torch.cuda.is_available()  # run_all measures on the GPU where there is one, and in bf16
SUITE_ROWS = [
    "matmul peak, fp32",
    *(["matmul peak, bf16"] if GPU else []),
    "tokenizer training, tiny",
    "world training (LAM + dynamics), tiny",
    "play.py loop (World.step + draw), configs/tiny, random weights",
    "World.step KV-cached vs uncached, 16-frame context",
    "vector env, num_envs 1,",
    "vector env, num_envs 4,",
    "shard write (gzip-4)",
    "random 16-frame clip reads",
]


def test_run_all_prints_one_table_with_every_suite_row_and_appends_nothing():
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_text()
    out = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--no-append", "--random-world", "--scale", "tiny",
         "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[:2] == ["| suite row | value | ratio to peak |", "| --- | --- | --- |"]
    rows = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert len(rows) == len(SUITE_ROWS)
    for (label, value, ratio), expected in zip(rows, SUITE_ROWS):
        assert label.startswith(expected)
        assert value and ratio
    reference = rows[1] if GPU else rows[0]
    assert reference[2] == "the reference"
    assert all("%" in row[2] for row in rows if row is not reference)  # every speed beside its ratio to the peak
    assert results.read_text() == before


def test_count_flops_counts_matmuls_and_cpu_attention():
    x, w = torch.randn(8, 32), torch.randn(16, 32)
    assert count_flops(F.linear, x, w) == 2 * 8 * 32 * 16
    q = torch.randn(1, 2, 10, 4)  # [B,H,L,d]: QK^T and AV, 2 * L * L * d each, per head
    assert count_flops(F.scaled_dot_product_attention, q, q, q) == 2 * (2 * 10 * 10 * 4) * 2


def test_appended_rows_carry_date_machine_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "RESULTS.md")
    common.append_results([("play.py loop", "12.0 frames/s; 3.1% (...)")], "make bench")
    common.append_results([("shard write", "100 MB/s")], "make bench")
    lines = (tmp_path / "RESULTS.md").read_text().splitlines()
    assert lines[0] == "# Benchmark results"
    rows = [line for line in lines if line.startswith(f"| {datetime.date.today().isoformat()} |")]
    assert rows == [f"| {datetime.date.today().isoformat()} | {common.machine()} | `make bench` | play.py loop | "
                    "12.0 frames/s; 3.1% (...) |",
                    f"| {datetime.date.today().isoformat()} | {common.machine()} | `make bench` | shard write | 100 MB/s |"]


def test_a_failing_suite_costs_its_own_rows_only(monkeypatch, capsys):
    import run_all

    def broken(*args):
        raise OSError("disk unplugged")

    monkeypatch.setattr(run_all, "train_rows", broken)  # the first suite: every later one still runs
    with pytest.raises(SystemExit, match="1 suite\\(s\\) failed: training, configs/tiny"):
        run_all.main(["--quick", "--no-append", "--random-world", "--scale", "tiny", "--threads", "1"])
    rows = [line[2:-2].split(" | ") for line in capsys.readouterr().out.strip().splitlines()[2:]]
    assert [row for row in rows if "FAILED" in row[1]] == [
        ["training, configs/tiny", "FAILED: OSError: disk unplugged", ""]]
    expected = [row for row in SUITE_ROWS if "training" not in row]  # measured after the failure too
    labels = [label for label, _, _ in rows if label != "training, configs/tiny"]
    assert len(labels) == len(expected) and all(a.startswith(b) for a, b in zip(labels, expected))


def test_ppo_benchmark_plays_real_coinrun_at_the_footages_frame_skip(tmp_path):
    """Each latent action is K game frames in a world learned from skip-K footage, so the real game
    holds each action K frames; the cut at --eval-max-steps still counts game frames."""
    coinrun = pytest.importorskip("data_pipeline.coinrun")
    coinrun.check_procgen()
    import ppo_in_world

    from genie.cli import main

    assert main(["record", "--env", "coinrun", "--episodes", "1", "--max-steps", "8", "--frame-skip", "4",
                 "--out", str(tmp_path / "skip4")]) == 0
    assert ppo_in_world.footage_frame_skip(str(tmp_path / "skip4")) == 4
    for skip, calls_expected in ((1, 40), (4, 10)):
        calls = []

        def noop(frames, calls=calls):
            calls.append(len(frames))
            return np.full(len(frames), 4)  # NOOP: the level never ends by itself within 40 frames

        returns = ppo_in_world.play_coinrun(noop, episodes=1, num_envs=1, seed=0, start_level=5, num_levels=1,
                                            mode="hard", max_steps=40, frame_skip=skip)
        assert len(returns) == 1 and len(calls) == calls_expected


def test_bench_step_times_this_tree_beside_a_revision_and_pairs_the_ratio():
    """Each revision runs from its own git worktree (removed afterwards), the timers take turns."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_step.py"), "--against", "HEAD",
                          "--repeats", "2", "--frames", "2", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 20")]
    assert len(rows) == 2 and "this tree |" in rows[0] and "HEAD (" in rows[1]
    assert "x as fast (median of paired repeats)" in rows[1]
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # only the checkout itself is left


def test_make_bench_times_the_shipped_world_beside_the_old_path():
    import run_all
    from bench_step import OLD_PATH

    rows = run_all.old_path_rows(ROOT / "worlds" / "coinrun", run_all.QUICK, 1, torch.device("cpu"))
    if not rows:  # old_path_rows leaves the row out of a shallow clone, and says so
        pytest.skip(f"a shallow checkout without {OLD_PATH}")
    from genie.world import cpu_has_bf16

    ours = ["this tree", *(["this tree, bf16"] if cpu_has_bf16() else [])]  # bf16: the player's default there
    assert [label.split(": ")[-1] for label, _, _ in rows] == [*ours, f"{OLD_PATH} ({OLD_PATH})"]
    assert all(f"{mine} is " in rows[-1][1] for mine in ours)  # the old path's row: a ratio to each of ours
    assert "x as fast (median of paired repeats)" in rows[-1][1] and "frames/s" in rows[0][1]


def test_lam_codes_tables_from_real_coinrun_footage(tmp_path):
    coinrun = pytest.importorskip("data_pipeline.coinrun")
    coinrun.check_procgen()
    from genie.cli import main

    data = tmp_path / "heldout"
    assert main(["record", "--env", "coinrun", "--policy", "uniform", "--frame-skip", "4", "--episodes", "4",
                 "--max-steps", "30", "--out", str(data)]) == 0
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/lam_codes.py"), "--world", str(ROOT / "worlds/coinrun"),
                          "--data", str(data), "--min-count", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "transitions" in lines[0] and lines[1].split()[:3] == ["latent", "class", "count"]
    per_class = lines[lines.index(next(line for line in lines if line.split()[:2] == ["class", "count"])) + 1:]
    assert [line.split()[0] for line in per_class] == ["LEFT", "LEFT+JUMP", "JUMP", "NOOP", "RIGHT", "RIGHT+JUMP"]
    counted = sum(int(line.split()[1]) for line in per_class)
    assert counted == int(lines[0].split(": ")[1].split()[0].replace(",", ""))  # every transition has a class


def test_next_frame_scores_every_pick_against_the_real_frame():
    import cv2
    from next_frame import FIRST, PICKS, next_frames

    from genie.world import World

    world = World.load(ROOT / "worlds/coinrun", device="cpu", precision="fp32")
    image = cv2.cvtColor(cv2.imread(str(ROOT / "worlds/coinrun/prompts/prompt-00.png")), cv2.COLOR_BGR2RGB)
    still = np.repeat(image[None], 6, 0)
    scroll = np.stack([np.roll(image, -4 * t, axis=1) for t in range(6)])  # the view moves right 4 px a frame
    r = next_frames(world, np.stack([still, scroll]), mbr=1.0)
    assert all(len(r[p]) == 2 * (6 - FIRST) for p in PICKS)
    assert (r["tokenizer tokens"] == 1).all()  # the ceiling is the frame's own tokens
    s = r["shift"] == 0
    assert s.sum() == 6 - FIRST and (r["shift"][~s] == -4).all()
    assert (r["copy tokens"][s] == 1).all() and np.allclose(r["copy"][s], r["tokenizer"][s])  # a still frame: copying is exact
    assert (r["copy"][~s] < r["tokenizer"][~s]).all()  # a moved one: copying is not
