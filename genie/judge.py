"""The judge: a small supervised inverse-dynamics model (IDM) that reads real actions off frames.

It is for evaluation only. Latent actions are found without labels, so nothing says how good a
latent-action probe *could* be: some actions leave no trace in two frames (CoinRun's jump key in
mid-air), and momentum makes a frame pair show the player's velocity more than the key pressed.
The judge is the reference: trained with the true actions that `genie record` stores, its accuracy
on the same transitions is what a probe is read against; and it reads the frames a world
generates, so "does LEFT move the world left?" is answered by the same eyes that read the game.

    genie judge train data/coinrun-judge --out judges/coinrun     # minutes on 2 CPU cores
    judge = Judge.load("judges/coinrun")
    classes = judge.read(video)     # uint8 [B,T,H,W,3] -> int64 [B,T-1]: class of each transition

Input: frames t-history .. t+1 (history 1 by default, so it can read momentum; frames before an
episode's first repeat the first), as uint8 [B, history+2, H, W, 3]. The network stacks them with
their consecutive differences as channels, four stride-2 3x3 conv blocks (64 px -> 4 px), the
mean and max of the map over positions (what moved reads the same wherever it is), and an MLP; output: logits over the footage's action classes
(data_pipeline.actions: CoinRun's 6 movement classes, else one class per action).

Saved as a bundle like every model (config.json + model.safetensors, component "judge"), with its
held-out accuracy and majority baseline beside the config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from genie.errors import GenieError


@dataclass
class JudgeConfig:
    height: int = 64
    width: int = 64
    classes: list[str] = field(default_factory=list)  # class names (data_pipeline.actions)
    history: int = 1  # frames before t it sees
    channels: int = 32  # of the first conv block; doubles per block up to 4x
    hidden: int = 256


class InverseDynamics(nn.Module):
    """frames uint8 [B, history+2, H, W, 3] -> logits [B, num_classes]."""

    def __init__(self, config: JudgeConfig):
        super().__init__()
        if config.height % 16 or config.width % 16:
            raise GenieError(f"judge frames must be multiples of 16 px, got {config.height}x{config.width}")
        if len(config.classes) < 2:
            raise GenieError(f"a judge needs at least 2 action classes, got {config.classes}")
        self.config = config
        frames = config.history + 2
        c_in = 3 * frames + 3 * (frames - 1)  # the frames and their consecutive differences
        widths = [config.channels * m for m in (1, 2, 4, 4)]
        blocks, c = [], c_in
        for w in widths:
            blocks += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.GroupNorm(8, w), nn.GELU()]
            c = w
        self.convs = nn.Sequential(*blocks)
        # mean and max over positions: what moved reads the same wherever it is on screen
        self.head = nn.Sequential(nn.Linear(2 * c, config.hidden), nn.GELU(), nn.Linear(config.hidden, len(config.classes)))

    def forward(self, frames: Tensor) -> Tensor:
        x = frames.float() / 127.5 - 1.0  # [B, F, H, W, 3]
        x = torch.cat([x, x[:, 1:] - x[:, :-1]], dim=1)  # [B, 2F-1, H, W, 3]
        x = self.convs(rearrange(x, "b f h w c -> b (f c) h w"))  # [B, C, H/16, W/16]
        return self.head(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))


def windows(video: Tensor, history: int) -> Tensor:
    """Every transition's judge input: uint8 [B, T, H, W, 3] -> [B, T-1, history+2, H, W, 3];
    window t holds frames t-history .. t+1, frames before 0 repeating frame 0."""
    t = video.shape[1]
    idx = torch.arange(t - 1, device=video.device)[:, None] + torch.arange(-history, 2, device=video.device)
    return video[:, idx.clamp(min=0)]


class Judge:
    """A trained InverseDynamics with its class names, on a device, in eval mode."""

    def __init__(self, model: InverseDynamics, info: dict | None = None, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.config = model.config
        self.classes = list(model.config.classes)
        self.info = info or {}

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Judge:
        from genie.bundle import component, read_bundle
        from genie.config import from_dict
        from genie.world import resolve_device

        path = Path(path)
        config, weights = read_bundle(path)
        cfg, state = component(config, weights, "judge", path)
        model = InverseDynamics(from_dict(JudgeConfig, cfg, f"{path} [judge]"))
        try:
            model.load_state_dict(state)
        except RuntimeError:
            raise GenieError(f"{path}: the judge's weights do not match its config.json; retrain it") from None
        return cls(model, config.get("judge", {}), resolve_device(device))

    def check(self, classes, frame_shape, where: str) -> None:
        """GenieError unless this judge reads `classes` (names) on frames of `frame_shape` (H, W, ...)."""
        if list(classes) != self.classes:
            raise GenieError(f"{where}: the judge was trained on classes {self.classes}, this footage has "
                             f"{list(classes)}; train a judge on footage of the same game (genie judge train)")
        if tuple(frame_shape[:2]) != (self.config.height, self.config.width):
            raise GenieError(f"{where}: the judge reads {self.config.height}x{self.config.width} frames, this "
                             f"footage has {frame_shape[0]}x{frame_shape[1]}; train a judge at that size")

    @torch.no_grad()
    def read(self, video, batch: int = 256) -> np.ndarray:
        """uint8 [B, T, H, W, 3] (numpy or torch) -> int64 [B, T-1]: the class of each transition."""
        video = torch.as_tensor(np.asarray(video) if not isinstance(video, Tensor) else video)
        win = windows(video, self.config.history)  # [B, T-1, F, H, W, 3]
        flat = rearrange(win, "b t f h w c -> (b t) f h w c")
        out = [self.model(flat[s : s + batch].to(self.device)).argmax(-1).cpu() for s in range(0, len(flat), batch)]
        return rearrange(torch.cat(out), "(b t) -> b t", b=video.shape[0]).numpy()


# ---------------------------------------------------------------------- training
@dataclass
class Transitions:
    """Labeled transitions of footage held in memory: frames uint8 [N, H, W, 3] of all episodes
    end to end, and per transition its row (frame t), episode's first row, class and episode id."""

    frames: Tensor
    row: np.ndarray
    first: np.ndarray
    label: np.ndarray
    episode: np.ndarray

    def batch(self, picks: np.ndarray, history: int) -> Tensor:
        """uint8 [len(picks), history+2, H, W, 3] windows of the picked transitions."""
        offsets = np.arange(-history, 2)
        idx = np.maximum(self.row[picks, None] + offsets, self.first[picks, None])
        return self.frames[torch.from_numpy(idx)]


def load_transitions(data: str | Path, max_frames: int | None = None, shards=None):
    """-> (Transitions, ActionClasses, frame_shape) of every known-action transition of DATA."""
    from data_pipeline.actions import action_classes
    from data_pipeline.shards import read_episodes

    frames, row, first, label, episode, classes, names, shape, n = [], [], [], [], [], None, None, None, 0
    for eid, ep in enumerate(read_episodes(data, max_frames, shards)):
        if classes is None:
            names, shape = ep.info.action_names, ep.info.frame_shape
            classes = action_classes(names, str(ep.info.path))
        if ep.info.action_names != names or ep.info.frame_shape != shape:
            raise GenieError(f"{ep.info.path}: its actions or frame size differ from the other shards of {data}")
        t = np.flatnonzero(ep.actions[:-1] >= 0)
        frames.append(ep.frames)
        row.append(n + t)
        first.append(np.full(len(t), n))
        label.append(classes.classify(ep.actions[t]))
        episode.append(np.full(len(t), eid))
        n += len(ep.frames)
    if classes is None or not sum(len(r) for r in row):
        raise GenieError(f"{data}: no transitions with true actions; record footage with `genie record`")
    cat = np.concatenate
    return (Transitions(torch.from_numpy(cat(frames)), cat(row), cat(first), cat(label), cat(episode)),
            classes, shape)


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


def score(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> dict:
    """Accuracy of predicted classes against the truth, beside the majority-class baseline."""
    return {"accuracy": float((predicted == truth).mean()),
            "majority_baseline": float(np.bincount(truth, minlength=num_classes).max() / len(truth))}


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


@torch.no_grad()
def judge_transitions(judge: Judge, data_t: Transitions, picks: np.ndarray, batch: int = 256) -> np.ndarray:
    """The judge's class for each picked transition of `data_t` -> int64 [len(picks)]."""
    judge.model.eval()
    out = [judge.model(data_t.batch(picks[s : s + batch], judge.config.history).to(judge.device)).argmax(-1).cpu()
           for s in range(0, len(picks), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def run_judge_train(data: str, out: str, log=print, **kwargs) -> dict:
    """`genie judge train`: train, save, print held-out accuracy beside the majority baseline."""
    result = train_judge(data, out, log=log, **kwargs)
    log(f"judge accuracy on held-out episodes: {result['accuracy']:.1%} vs majority baseline "
        f"{result['majority_baseline']:.1%} ({result['heldout_transitions']:,} transitions)")
    log(f"wrote judge {out}")
    return result


def run_judge_eval(judge_path: str, data: str, device: str = "auto", log=print) -> dict:
    """`genie judge eval`: the judge's accuracy on every known-action transition of DATA."""
    from data_pipeline.shards import find_shards, read_shard_info

    judge = Judge.load(judge_path, device)
    first = read_shard_info(find_shards(data)[0])
    data_t, classes, shape = load_transitions(data)
    judge.check(classes.names, shape, str(first.path))
    predicted = judge_transitions(judge, data_t, np.arange(len(data_t.label)))
    result = {**score(predicted, data_t.label, len(classes.names)), "transitions": int(len(data_t.label))}
    log(f"judge accuracy on {data}: {result['accuracy']:.1%} vs majority baseline {result['majority_baseline']:.1%} "
        f"({result['transitions']:,} transitions)")
    return result
