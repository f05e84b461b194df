"""`genie scale`: a 2-point sweep of configs/scale/tiny.yaml end to end, its resume, and the fit."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import genie.training.run
from genie.cli import main
from genie.training.scale import fit_power_law, load_sweep

ROOT = Path(__file__).resolve().parents[1]
TOKENS_PER_STEP = 8 * 4 * 64  # batch 8 x 4 frames x 8x8 tokens (configs/scale/tiny.yaml)


def two_point_sweep(path: Path, steps: int = 16) -> Path:
    """configs/scale/tiny.yaml cut to 2 points (dynamics width 16 and 32) and a short budget."""
    sweep = yaml.safe_load((ROOT / "configs/scale/tiny.yaml").read_text())
    sweep["base"] = str(ROOT / "configs/scale" / sweep["base"])
    sweep["tokenizer"]["config"] = str(ROOT / "configs/scale" / sweep["tokenizer"]["config"])
    sweep["tokenizer"]["overrides"] += ["train.max_steps=6"]
    sweep["budget"] = {"tokens": steps * TOKENS_PER_STEP}
    sweep["grid"] = {"dynamics.dim": [16, 32], "dynamics.depth": [1]}
    sweep["eval"] = {"clips": 4}
    path.write_text(yaml.safe_dump(sweep))
    return path


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def checkpoint_times(sweep: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sweep.rglob("*.ckpt")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("scale") / "data"
    assert main(["record", "--env", "synthetic", "--episodes", "10", "--max-steps", "30", "--out", str(d)]) == 0
    return d


def test_tiny_sweep_config_names_its_points_by_what_varies():
    sweep = load_sweep(ROOT / "configs/scale/tiny.yaml")
    assert len(sweep.points) >= 3 and sweep.budget_kind == "tokens" and sweep.base.is_file()
    assert sweep.points[0].name == "dim16-depth1"
    assert "dynamics.dim=16" in sweep.points[0].overrides


def test_a_killed_sweep_continues_and_a_finished_one_is_not_retrained(data, tmp_path, monkeypatch, capsys):
    config, out = two_point_sweep(tmp_path / "sweep.yaml"), tmp_path / "sweep"
    args = ["scale", "--config", str(config), "--data", str(data), "--out", str(out)]
    real_train = genie.training.run.train_stage

    def killed_halfway(stage, config, data, out, overrides=None, **kwargs):
        if Path(out).parent.name == "dim32":  # the second point: train half its steps, then die
            real_train(stage, config, data, out, [*overrides, "train.max_steps=8"], **kwargs)
            raise KeyboardInterrupt
        return real_train(stage, config, data, out, overrides, **kwargs)

    monkeypatch.setattr(genie.training.run, "train_stage", killed_halfway)
    assert main(args) == 130
    monkeypatch.undo()
    assert [r["name"] for r in read_rows(out / "results.csv")] == ["dim16"]
    first_point = checkpoint_times(out / "points" / "dim16")

    assert main(args) == 0  # continues: dim16 is skipped, dim32 resumes at step 8
    rows = read_rows(out / "results.csv")
    assert [r["name"] for r in rows] == ["dim16", "dim32"]
    assert checkpoint_times(out / "points" / "dim16") == first_point
    run = out / "points" / "dim32" / "run"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 16
    assert (run / "logs" / "version_1").is_dir()  # a second session of the same run, not a restart
    for r in rows:
        assert int(r["steps"]) == 16 and int(r["tokens"]) == 16 * TOKENS_PER_STEP
        assert int(r["flops_per_step"]) > 0 and int(r["train_flops"]) == 16 * int(r["flops_per_step"])
        assert int(r["train_flops_total"]) > int(r["train_flops"])  # + the LAM and the tokenizer
        assert math.isfinite(float(r["val_loss"])) and 0 < float(r["val_loss"]) < 10
        assert 5 < float(r["next_frame_psnr"]) < 100 and float(r["wall_s"]) > 0
    assert int(rows[1]["params"]) > int(rows[0]["params"]) and int(rows[1]["train_flops"]) > int(rows[0]["train_flops"])
    assert (out / "scaling.png").stat().st_size > 10_000
    assert "fit skipped" in json.loads((out / "fit.json").read_text())["note"]
    capsys.readouterr()

    before, times = (out / "results.csv").read_text(), checkpoint_times(out)
    assert main(args) == 0  # finished: nothing retrained
    assert (out / "results.csv").read_text() == before and checkpoint_times(out) == times
    printed = capsys.readouterr().out
    assert printed.count(": done (in") == 2 and "fit skipped: 2 point(s)" in printed

    other_budget = yaml.safe_load(config.read_text()) | {"budget": {"tokens": 32 * TOKENS_PER_STEP}}
    config.write_text(yaml.safe_dump(other_budget))
    assert main(args) == 2  # the same folder with other settings is refused, not mixed
    assert "started with other settings" in capsys.readouterr().err


def test_power_law_fit_recovers_its_coefficients():
    compute = np.geomspace(1e9, 1e13, 6)
    loss = 40.0 * compute**-0.25 + 1.5
    fit = fit_power_law(compute, loss)
    assert fit["a"] == pytest.approx(40.0, rel=1e-3) and fit["b"] == pytest.approx(0.25, rel=1e-3)
    assert fit["c"] == pytest.approx(1.5, rel=1e-3) and fit["r2"] > 0.9999
    assert "a" not in fit_power_law(compute[:2], loss[:2])
