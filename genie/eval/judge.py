"""A trained judge (genie/models/judge.py) at work: load it, read the class of every transition of
a video, and score it on footage with true actions (`genie judge eval`).

    genie judge train data/coinrun-judge --out judges/coinrun     # minutes on 2 CPU cores
    judge = Judge.load("judges/coinrun")
    classes = judge.read(video)     # uint8 [B,T,H,W,3] -> int64 [B,T-1]: class of each transition
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from genie.errors import GenieError
from genie.models.judge import InverseDynamics, JudgeConfig, windows


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

def score(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> dict:
    """Accuracy of predicted classes against the truth, beside the majority-class baseline."""
    return {"accuracy": float((predicted == truth).mean()),
            "majority_baseline": float(np.bincount(truth, minlength=num_classes).max() / len(truth))}

@torch.no_grad()
def judge_transitions(judge: Judge, data_t: Transitions, picks: np.ndarray, batch: int = 256) -> np.ndarray:
    """The judge's class for each picked transition of `data_t` -> int64 [len(picks)]."""
    judge.model.eval()
    out = [judge.model(data_t.batch(picks[s : s + batch], judge.config.history).to(judge.device)).argmax(-1).cpu()
           for s in range(0, len(picks), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)

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
