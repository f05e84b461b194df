"""`genie scale`: scaling sweeps of the dynamics model under a fixed token or FLOP budget per point.

A sweep config (configs/scale/*.yaml; relative paths in it are relative to the file itself):

    base: ../tiny/world.yaml            the world-stage config every point starts from
    tokenizer:                          trained once into SWEEP/tokenizer (or: a bundle path;
      config: ../tiny/tokenizer.yaml    `--tokenizer BUNDLE` overrides both)
      overrides: [train.max_steps=150]
    overrides: [train.wandb=false]      applied to every point, as after `genie train world`
    budget: {tokens: 2.0e+6}            per point: dynamics tokens seen, or {flops: 1.0e+13}, the
                                        dynamics' training FLOPs (an isoFLOP slice: every point gets
                                        the same compute, so read loss vs parameters; L(C) is fit
                                        only when compute spans 2x); train.max_steps follows
    grid:                               every combination is one point ...
      dynamics.dim: [32, 64]
      dynamics.depth: [1, 2]
    points:                             ... and/or points listed one by one
      - {name: wide, dynamics.dim: 96, dynamics.depth: 1}
    eval: {clips: 32}                   clips for the next-frame PSNR

FLOPs are counted, not estimated: torch.utils.flop_counter over one training step of a clip
(forward and backward, attention included), times the batch size and the steps. `train_flops` is
the dynamics model's, the model being scaled and the x axis of the fit; `train_flops_total` adds
the LAM it is co-trained with and the frozen tokenizer's encoding. Budgets assume one device.
The other columns of results.csv: params (dynamics) and params_total (+ LAM); steps; tokens
(dynamics tokens seen); val_loss, the dynamics' masked-token cross-entropy on held-out episodes
after training (val/dyn_loss over train.val_batches batches); next_frame_psnr, dB of frame 1
generated from frame 0 with the LAM's action (t = 1 of `genie eval`); wall_s, seconds spent
training, summed over sessions (those of a session killed with SIGKILL are lost).

A sweep folder (--out) holds:
    tokenizer/, tokenizer.bundle/   the sweep's tokenizer run and bundle (when the config trains one)
    points/<name>/                  per point: run/ (a `genie train world` run folder), bundle/
                                    (its world) and point.json (its settings, training seconds)
    results.csv                     one row per finished point: RESULT_COLUMNS
    scaling.png, fit.json           loss vs compute and vs parameters (log-log); L(C) = a*C^-b + c

Rerunning the same command resumes: points in results.csv are skipped, a point killed during
training continues from its last checkpoint, and the plot and fit are redrawn from all the config's
points. A point folder started with other settings (overrides, budget, tokenizer) is refused.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genie.config import load_yaml
from genie.errors import GenieError
from genie.files import atomic_file

RESULT_COLUMNS = [
    "name", "overrides", "params", "params_total", "steps", "tokens", "flops_per_step", "train_flops",
    "train_flops_total", "val_loss", "next_frame_psnr", "wall_s",
]
SWEEP_KEYS = {"base", "tokenizer", "overrides", "budget", "grid", "points", "eval"}


@dataclass
class Point:
    """One model of the family: a name (its folder) and its `section.key=value` overrides."""

    name: str
    overrides: list[str]


@dataclass
class Sweep:
    base: Path  # world-stage YAML
    budget_kind: str  # "tokens" or "flops"
    budget: float
    points: list[Point]
    tokenizer: str | dict | None = None  # a bundle path, or {config: Path, overrides: [...]} to train
    overrides: list[str] = field(default_factory=list)  # every point's
    eval_clips: int = 32


def _override(key: str, value: Any) -> str:
    """('dynamics.dim', 64) -> 'dynamics.dim=64' (JSON is YAML, so lists and strings survive)."""
    return f"{key}={json.dumps(value)}"


def _point_name(values: dict[str, Any]) -> str:
    """{'dynamics.dim': 64, 'dynamics.depth': 2} -> 'dim64-depth2'."""
    return "-".join(f"{k.rsplit('.', 1)[-1]}{v}" for k, v in values.items())


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep config (see the module docstring)."""
    path = Path(path)
    raw = load_yaml(path)
    here = path.parent
    unknown = sorted(set(raw) - SWEEP_KEYS)
    if unknown:
        raise GenieError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(SWEEP_KEYS))})")
    if "base" not in raw:
        raise GenieError(f"{path}: needs base: the world config every point starts from, e.g. ../tiny/world.yaml")
    budget = raw.get("budget") or {}
    if not isinstance(budget, dict) or len(budget) != 1 or next(iter(budget)) not in ("tokens", "flops"):
        raise GenieError(f"{path}: budget must be one of {{tokens: N}} or {{flops: N}} per point, got {budget!r}")
    kind, amount = next(iter(budget.items()))
    try:
        amount = float(amount)  # PyYAML reads 2.0e6 (no exponent sign) as a string
    except (TypeError, ValueError):
        raise GenieError(f"{path}: budget.{kind} must be a number, got {amount!r}") from None
    if amount <= 0:
        raise GenieError(f"{path}: budget.{kind} must be positive, got {amount}")

    points = []
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise GenieError(f"{path}: grid must map section.key to a non-empty list of values")
    named = [k for k, v in grid.items() if len(v) > 1] or list(grid)  # names say what varies
    for combo in itertools.product(*grid.values()) if grid else []:
        values = dict(zip(grid, combo))
        name = _point_name({k: values[k] for k in named})
        points.append(Point(name, [_override(k, v) for k, v in values.items()]))
    for entry in raw.get("points") or []:
        if not isinstance(entry, dict):
            raise GenieError(f"{path}: each entry of points must be a mapping of section.key: value")
        values = {k: v for k, v in entry.items() if k != "name"}
        points.append(Point(str(entry.get("name") or _point_name(values)), [_override(k, v) for k, v in values.items()]))
    if not points:
        raise GenieError(f"{path}: no points: add a grid: (section.key: [values]) or a points: list")
    names = [p.name for p in points]
    for p in points:
        if names.count(p.name) > 1 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*", p.name):
            raise GenieError(f"{path}: point name '{p.name}' is repeated or not a plain folder name; "
                             f"give the points names (points: - name: ...)")

    tokenizer = raw.get("tokenizer")
    if isinstance(tokenizer, dict):
        if "config" not in tokenizer:
            raise GenieError(f"{path}: tokenizer: needs config: (a tokenizer YAML) or a bundle path instead")
        tokenizer = {"config": here / tokenizer["config"], "overrides": list(tokenizer.get("overrides") or [])}
    elif tokenizer is not None:
        tokenizer = str(here / str(tokenizer))
    return Sweep(base=here / raw["base"], budget_kind=kind, budget=amount, points=points, tokenizer=tokenizer,
                 overrides=[str(o) for o in raw.get("overrides") or []],
                 eval_clips=int((raw.get("eval") or {}).get("clips", 32)))


def count_flops(step) -> int:
    """FLOPs of calling `step()` (forward and backward inside it), counted by torch's FlopCounterMode.
    Attention runs on its plain-math kernel here so its matmuls are counted on every device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def measure_models(sections: dict[str, Any], tokenizer_cfg) -> dict[str, int]:
    """Parameters and training FLOPs of one clip of train.clip_len frames for a world config ->
    {params, params_total, dyn_flops, lam_flops, lam_infer_flops, encode_flops, total_flops}
    (params_total: dynamics + LAM).

    dyn_flops: forward + backward of the dynamics' masked-token loss; lam_flops: the LAM's forward
    + backward; lam_infer_flops: its encoder alone (a frozen LAM); encode_flops: the frozen
    tokenizer's encoding; total_flops: what a co-training WorldModule step runs (dyn + lam + encode).
    FLOPs grow linearly with the batch, so one clip is counted, on a GPU when there is one."""
    from genie.models.dynamics import Dynamics
    from genie.models.lam import LatentActionModel
    from genie.models.tokenizer import VideoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        tokenizer = VideoTokenizer(tokenizer_cfg).eval()
        lam, dynamics = LatentActionModel(sections["lam"]), Dynamics(sections["dynamics"])
        frames = torch.randint(0, 256, (1, sections["train"].clip_len, tokenizer_cfg.height, tokenizer_cfg.width, 3),
                               dtype=torch.uint8)
    with torch.no_grad():
        tokens = tokenizer.encode(frames).indices
        actions = lam(frames).actions
    encode = count_flops(lambda: tokenizer.encode(frames))
    lam_step = count_flops(lambda: lam.loss(frames, lam(frames))[0].backward())
    lam_infer = count_flops(lambda: lam.infer_actions(frames))
    dyn_step = count_flops(lambda: dynamics.loss(tokens, actions)[0].backward())
    params = sum(p.numel() for p in dynamics.parameters())
    return {"params": params, "params_total": params + sum(p.numel() for p in lam.parameters()),
            "dyn_flops": dyn_step, "lam_flops": lam_step, "lam_infer_flops": lam_infer, "encode_flops": encode,
            "total_flops": dyn_step + lam_step + encode}


def steps_for_budget(train, m: dict[str, int], budget: float) -> int:
    """Training steps that `budget` counted FLOPs buy a world run (m from measure_models): co-trained
    steps cost total_flops a clip; with train.lam_steps, those steps cost lam_flops and the rest
    dyn + lam_infer + encode. A budget below the LAM phase's cost is an error (ValueError)."""
    if not train.lam_steps:
        return max(1, round(budget / (train.batch_size * m["total_flops"])))
    left = budget - train.lam_steps * train.batch_size * m["lam_flops"]
    dyn_step = train.batch_size * (m["dyn_flops"] + m["lam_infer_flops"] + m["encode_flops"])
    if left < dyn_step:
        raise ValueError(f"a budget of {budget:.3g} FLOPs does not cover train.lam_steps={train.lam_steps} "
                         f"LAM steps ({budget - left:.3g} FLOPs) and one dynamics step")
    return train.lam_steps + round(left / dyn_step)


def plan_point(sweep: Sweep, point: Point, overrides: list[str], tokenizer_cfg, run: Path) -> tuple[dict, dict]:
    """Resolve a point's config, count its FLOPs, and turn the budget into train.max_steps.
    -> (its results row less what training and evaluation measure, its config sections)."""
    from genie.training.run import resolve_config

    sections = resolve_config("world", str(sweep.base), overrides, run, resume=False, tokenizer_cfg=tokenizer_cfg)
    train, dyn = sections["train"], sections["dynamics"]
    m = measure_models(sections, tokenizer_cfg)
    tokens_per_step = train.batch_size * train.clip_len * dyn.grid_h * dyn.grid_w
    flops_per_step = train.batch_size * m["dyn_flops"]
    steps = max(1, round(sweep.budget / (tokens_per_step if sweep.budget_kind == "tokens" else flops_per_step)))
    row = {
        "name": point.name, "overrides": " ".join(point.overrides), "params": m["params"],
        "params_total": m["params_total"], "steps": steps, "tokens": steps * tokens_per_step,
        "flops_per_step": flops_per_step, "train_flops": steps * flops_per_step,
        "train_flops_total": steps * train.batch_size * m["total_flops"],
    }
    return row, sections


def train_resumable(stage: str, config: str, data: str, run: Path, overrides: list[str],
                     tokenizer: str | None = None) -> None:
    """Train a run folder to the end, continuing from its last checkpoint when a killed run left one
    (a run killed before its first checkpoint starts over)."""
    from genie.training.run import train_stage

    resume = (run / "checkpoints" / "last.ckpt").is_file()
    if not resume and run.exists():
        shutil.rmtree(run)
    if resume:  # the run keeps its own config.yaml; only train.* may change
        overrides = [o for o in overrides if o.startswith("train.")]
    train_stage(stage, config, data, str(run), overrides, resume=resume, tokenizer=tokenizer)


def sweep_tokenizer(sweep: Sweep, data: str, out: Path, tokenizer: str | None) -> str:
    """The tokenizer bundle every point trains on: --tokenizer, the config's bundle, or one trained
    (once, resumably) into OUT/tokenizer and exported to OUT/tokenizer.bundle."""
    from genie.training.run import export_run

    tokenizer = tokenizer or (sweep.tokenizer if isinstance(sweep.tokenizer, str) else None)
    if tokenizer:
        return tokenizer
    if sweep.tokenizer is None:
        raise GenieError("genie scale needs a tokenizer: --tokenizer BUNDLE, or tokenizer: in the sweep config")
    bundle = out / "tokenizer.bundle"
    if not bundle.exists():
        train_resumable("tokenizer", str(sweep.tokenizer["config"]), data, out / "tokenizer", sweep.tokenizer["overrides"])
        export_run(str(out / "tokenizer"), str(bundle))
    return str(bundle)


def final_val_loss(run: Path) -> float:
    """The dynamics' validation loss (val/dyn_loss) that the run logged last (logs/version_N/metrics.csv)."""
    versions = sorted((run / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[-1]))
    for version in reversed(versions):
        with (version / "metrics.csv").open(newline="") as f:
            losses = [row["val/dyn_loss"] for row in csv.DictReader(f) if row.get("val/dyn_loss")]
        if losses:
            return float(losses[-1])
    raise GenieError(f"{run}: no val/dyn_loss was logged; the data needs held-out episodes (train.val_fraction > 0)")


def eval_clips(data: str, eval_data: str | None, train_cfg, clips: int) -> np.ndarray:
    """Two-frame clips (uint8 [N,2,H,W,3]) for next-frame PSNR: from --eval-data, else from the
    held-out episodes of the training data (the same split as validation)."""
    from genie.eval.evaluate import sample_clips

    if eval_data:
        return sample_clips(eval_data, 2, clips)[0]
    from genie.training.data import ClipDataModule

    dm = ClipDataModule(data, clip_len=train_cfg.clip_len, batch_size=1, val_fraction=train_cfg.val_fraction,
                        seed=train_cfg.seed)
    dm.setup("fit")
    if dm.val_dataset is None:
        raise GenieError(f"{data}: no held-out episodes for next-frame PSNR; record more episodes or pass --eval-data")
    picks = np.unique(np.linspace(0, len(dm.val_dataset) - 1, clips).round().astype(int))
    return np.stack([dm.val_dataset[int(i)]["frames"][:2].numpy() for i in picks])


def next_frame_psnr(bundle: str | Path, clips: np.ndarray, device: str = "auto") -> float:
    """Mean PSNR (dB) of frame 1 generated from frame 0 with the action the LAM infers from the
    real pair, over clips uint8 [N,2,H,W,3] (the t = 1 point of `genie eval`'s curve)."""
    from genie.eval.metrics import mean_psnr
    from genie.world import World

    world = World.load(bundle, device=device)
    actions = world.infer_actions(clips)  # [N, 1]
    world.reset(clips[:, :1], seed=list(range(len(clips))))
    generated = world.step(actions[:, 0])
    return mean_psnr(torch.from_numpy(generated), torch.from_numpy(clips[:, 1]))


def fit_power_law(compute, loss) -> dict[str, Any]:
    """Fit L(C) = a * C^-b + c (scipy curve_fit; a, b >= 0, 0 <= c <= min L) -> {a, b, c, r2, points}
    or {note, points} when it cannot be fit (fewer than 3 points, compute spanning < 2x, no convergence)."""
    from scipy.optimize import curve_fit

    c_arr, l_arr = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    n = len(c_arr)
    if n < 3:
        return {"points": n, "note": f"fit skipped: {n} point(s) for 3 parameters (a, b, c); it needs at least 3"}
    if c_arr.max() < 2 * c_arr.min():
        return {"points": n, "note": "fit skipped: the points' compute spans less than 2x (a FLOP budget gives "
                "every point the same compute: read loss vs parameters, or sweep a token budget)"}
    ref = c_arr.min()  # fit in C / ref so the parameters are of order 1

    def law(x, a, b, c):
        return a * x ** (-b) + c

    p0 = (max(l_arr.max() - 0.5 * l_arr.min(), 1e-3), 0.5, 0.5 * l_arr.min())
    try:
        (a, b, c), _ = curve_fit(law, c_arr / ref, l_arr, p0=p0, bounds=([0, 0, 0], [np.inf, 10, l_arr.min()]),
                                 maxfev=20_000)
    except (RuntimeError, ValueError) as err:
        return {"points": n, "note": f"fit failed: {err}"}
    residual = l_arr - law(c_arr / ref, a, b, c)
    total = ((l_arr - l_arr.mean()) ** 2).sum()
    r2 = 1 - (residual**2).sum() / total if total > 0 else float("nan")
    fit = {"a": float(a * ref**b), "b": float(b), "c": float(c), "r2": float(r2), "points": n}
    if n == 3:
        fit["note"] = "3 points for 3 parameters: the curve passes through them, R^2 says nothing"
    return fit


def format_fit(fit: dict[str, Any]) -> str:
    if "a" not in fit:
        return fit["note"]
    line = f"L(C) = {fit['a']:.4g} * C^-{fit['b']:.4g} + {fit['c']:.4g}   (C = training FLOPs; R^2 {fit['r2']:.4f}, {fit['points']} points)"
    return line + (f"\n{fit['note']}" if "note" in fit else "")


def plot_sweep(rows: list[dict[str, Any]], fit: dict[str, Any], path: Path, title: str) -> None:
    """Two log-log panels: validation loss vs training FLOPs (with the fit) and vs parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    flops = np.array([float(r["train_flops"]) for r in rows])
    params = np.array([float(r["params"]) for r in rows])
    loss = np.array([float(r["val_loss"]) for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, x, label in ((left, flops, "training FLOPs (dynamics, counted)"), (right, params, "dynamics parameters")):
        ax.scatter(x, loss, color="C0", zorder=3)
        for i, (xi, li, r) in enumerate(zip(x, loss, rows)):  # labels alternate above and below
            ax.annotate(r["name"], (xi, li), textcoords="offset points", xytext=(4, 4 if i % 2 else -10), fontsize=7)
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="validation loss (dynamics CE)")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.grid(True, which="both", alpha=0.3)
    if "a" in fit:
        xs = np.geomspace(flops.min() / 1.5, flops.max() * 1.5, 100)
        left.plot(xs, fit["a"] * xs ** (-fit["b"]) + fit["c"], color="C1",
                  label=f"{fit['a']:.3g}·C^-{fit['b']:.3g} + {fit['c']:.3g} (R² {fit['r2']:.3f})")
        left.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_results(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite results.csv atomically, so a killed sweep never leaves a torn file."""
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _portable(path: str, root: Path) -> str:
    """`path` relative to `root` when inside it (a sweep folder can move), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else str(path)


def _check_point_settings(folder: Path, settings: dict[str, Any]) -> None:
    """A point folder from an earlier run must have been started with the same settings."""
    saved = folder / "point.json"
    if saved.is_file():
        before = json.loads(saved.read_text())["settings"]
        if before != settings:
            raise GenieError(f"{folder}: this point was started with other settings ({before}, now {settings}); "
                             f"use a new --out, or delete the folder and its row in results.csv")


def run_point(sweep: Sweep, row: dict[str, Any], sections: dict[str, Any], overrides: list[str],
              settings: dict[str, Any], data: str, eval_data: str | None, tokenizer: str, folder: Path) -> dict[str, Any]:
    """Train (or finish) one planned point (plan_point's row and sections) in `folder`, export its
    world, measure it -> its complete results row."""
    from genie.training.run import export_run

    meta_file = folder / "point.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {"train_s": 0.0}
    meta["settings"] = settings
    folder.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta, indent=2))
    start = time.perf_counter()
    try:
        train_resumable("world", str(sweep.base), data, folder / "run", [*overrides, f"train.max_steps={row['steps']}"],
                         tokenizer=tokenizer)
    finally:  # a killed session's seconds count too (all but a SIGKILL's)
        meta["train_s"] += time.perf_counter() - start
        meta_file.write_text(json.dumps(meta, indent=2))
    bundle = export_run(str(folder / "run"), str(folder / "bundle"), force=True)  # a killed session's is stale
    clips = eval_clips(data, eval_data, sections["train"], sweep.eval_clips)
    return {**row, "val_loss": final_val_loss(folder / "run"), "next_frame_psnr": next_frame_psnr(bundle, clips),
            "wall_s": round(meta["train_s"], 1)}


def run_scale(config: str, data: str, out: str, tokenizer: str | None = None, eval_data: str | None = None,
              overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """Run (or continue) the sweep of `config` on `data` into folder `out` (see the module docstring).
    -> the results rows; also writes results.csv, scaling.png and fit.json, and prints the fit."""
    from genie.bundle import read_bundle
    from genie.config import from_dict
    from genie.models.tokenizer import TokenizerConfig

    sweep, out = load_sweep(config), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.csv"
    done = {r["name"]: r for r in read_results(results_file)}
    bundle = sweep_tokenizer(sweep, data, out, tokenizer)
    tokenizer_cfg = from_dict(TokenizerConfig, read_bundle(bundle)[0]["components"]["tokenizer"], bundle)
    plans = []  # every pending point is planned first, so a bad config fails before any training
    for point in sweep.points:
        point_overrides = [*sweep.overrides, *(overrides or []), *point.overrides]
        settings = {"overrides": point_overrides, "budget": {sweep.budget_kind: sweep.budget},
                    "tokenizer": _portable(bundle, out)}
        folder = out / "points" / point.name
        _check_point_settings(folder, settings)
        if point.name in done:
            print(f"scale: point {point.name}: done (in {results_file})")
            continue
        row, sections = plan_point(sweep, point, point_overrides, tokenizer_cfg, folder / "run")
        print(f"scale: point {point.name}: {row['params'] / 1e6:.3g}M dynamics parameters, {row['steps']} steps, "
              f"{row['tokens']:.3g} tokens, {row['train_flops']:.3g} FLOPs")
        plans.append((point.name, row, sections, point_overrides, settings, folder))
    for name, row, sections, point_overrides, settings, folder in plans:
        print(f"scale: training point {name}")
        done[name] = run_point(sweep, row, sections, point_overrides, settings, data, eval_data, bundle, folder)
        write_results(results_file, list(done.values()))
    rows = [done[p.name] for p in sweep.points if p.name in done]
    extra = sorted(set(done) - {p.name for p in sweep.points})
    if extra:
        print(f"scale: {results_file} also holds points not in {config} ({', '.join(extra)}); "
              f"they are kept but left out of the plot and fit")
    fit = fit_power_law([float(r["train_flops"]) for r in rows], [float(r["val_loss"]) for r in rows])
    (out / "fit.json").write_text(json.dumps(fit, indent=2) + "\n")
    budget = f"{sweep.budget:.3g} {sweep.budget_kind} per point"
    plot_sweep(rows, fit, out / "scaling.png", f"{Path(config).name}: {len(rows)} dynamics models, {budget}")
    print(format_table(rows))
    print(format_fit(fit))
    print(f"scale: wrote {results_file}, {out / 'scaling.png'}, {out / 'fit.json'}")
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The results as an aligned text table."""
    head = ["point", "params", "steps", "tokens", "train FLOPs", "val loss", "next-frame PSNR", "wall s"]
    body = [[r["name"], f"{float(r['params']) / 1e6:.3f}M", str(r["steps"]), f"{float(r['tokens']):.3g}",
             f"{float(r['train_flops']):.3g}", f"{float(r['val_loss']):.4f}", f"{float(r['next_frame_psnr']):.2f} dB",
             f"{float(r['wall_s']):.0f}"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)) for line in [head, *body])
