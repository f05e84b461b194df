"""Training the judge (`genie judge train`): a supervised inverse-dynamics model fit on the true
actions `genie record` stores, with a share of the episodes held out (genie/models/judge.py)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genie.errors import GenieError
from genie.eval.judge import Judge, judge_transitions, load_transitions, score
from genie.models.judge import InverseDynamics, JudgeConfig


def train_judge(data: str | Path, out: str | Path, history: int = 1, steps: int = 1500, batch_size: int = 64,
                lr: float = 1e-3, val_fraction: float = 0.1, max_frames: int | None = 300_000, seed: int = 0,
                channels: int = 32, log=print) -> dict:
    """Train a judge on DATA's true actions, hold out `val_fraction` of its episodes, save it at OUT.
    Returns {"accuracy", "majority_baseline", ...} on the held-out episodes."""
    from genie.bundle import save_bundle

    if steps < 1 or batch_size < 1 or history < 0 or not 0 < val_fraction < 1 or not lr > 0:
        raise GenieError(f"genie judge train: need --steps >= 1, --batch >= 1, --history >= 0, 0 < --val-fraction < 1 "
                         f"and --lr > 0; got {steps}, {batch_size}, {history}, {val_fraction}, {lr}")
    check_out(Path(out))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data_t, classes, shape = load_transitions(data, max_frames)
    eps = np.unique(data_t.episode)
    if len(eps) < 2:
        raise GenieError(f"{data}: the judge needs at least 2 episodes (one to hold out)")
    val_eps = rng.permutation(eps)[: max(1, round(len(eps) * val_fraction))]
    is_val = np.isin(data_t.episode, val_eps)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    config = JudgeConfig(height=shape[0], width=shape[1], classes=list(classes.names), history=history,
                         channels=channels)
    model = InverseDynamics(config)
    params = sum(p.numel() for p in model.parameters())
    log(f"judge: {params / 1e6:.2f}M params, {len(classes.names)} classes {list(classes.names)}, history {history}; "
        f"{len(train_idx):,} training / {len(val_idx):,} held-out transitions ({len(val_eps)} episodes)")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    labels = torch.from_numpy(data_t.label)
    report = max(1, steps // 10)
    for step in range(1, steps + 1):
        model.train()
        picks = rng.choice(train_idx, size=batch_size)
        loss = F.cross_entropy(model(data_t.batch(picks, history)), labels[picks])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % report == 0 or step == steps:
            log(f"  step {step}/{steps}  loss {loss.item():.3f}")
    judge = Judge(model)
    result = {**score(judge_transitions(judge, data_t, val_idx), data_t.label[val_idx], len(classes.names)),
              "heldout_transitions": int(len(val_idx)), "train_transitions": int(len(train_idx)),
              "steps": steps, "batch_size": batch_size, "data": str(data)}
    save_bundle(Path(out), {"components": {"judge": asdict(config)}, "judge": result},
                {f"judge.{k}": v for k, v in model.state_dict().items()}, force=True)  # check_out: absent or a judge
    return result

def check_out(out: Path) -> None:
    """GenieError before training if OUT exists and is not a judge (it would be replaced)."""
    import json

    if not out.exists():
        return
    config = out / "config.json"
    try:
        is_judge = out.is_dir() and "judge" in json.loads(config.read_text()).get("components", {})
    except (OSError, ValueError):
        is_judge = False
    if not is_judge:
        raise GenieError(f"{out} exists and is not a judge; pass another --out (a judge there would replace it)")

def run_judge_train(data: str, out: str, log=print, **kwargs) -> dict:
    """`genie judge train`: train, save, print held-out accuracy beside the majority baseline."""
    result = train_judge(data, out, log=log, **kwargs)
    log(f"judge accuracy on held-out episodes: {result['accuracy']:.1%} vs majority baseline "
        f"{result['majority_baseline']:.1%} ({result['heldout_transitions']:,} transitions)")
    log(f"wrote judge {out}")
    return result
