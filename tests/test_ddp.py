"""Training on several processes: 2-process DDP on CPU (gloo) keeps the ranks in step on different
data, and its checkpoint resumes on 1 process.

`genie train` with train.devices=2 relaunches its own command line for rank 1, so the test runs
this file as that command: run as a script, it records on every rank the weights at the start and
the end of fit and the batches it saw (to $GENIE_TEST_RANK_DIR/rank{R}.pt), then runs `genie`.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genie.cli import main
from genie.training.tokenizer_module import TokenizerModule

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "tokenizer.yaml")
FAST = ["train.wandb=false", "train.progress_bar=false"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    args = ["record", "--env", "synthetic", "--episodes", "8", "--max-steps", "24", "--out", str(out)]
    assert main(args) == 0
    return out


def _weights(module: TokenizerModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.model.state_dict().items()}


def test_two_process_ddp_keeps_ranks_identical_and_resumes_on_one(synth, tmp_path, monkeypatch):
    run, dumps = tmp_path / "run", tmp_path / "ranks"
    cmd = [sys.executable, __file__, "train", "tokenizer", "--config", TINY, "--data", str(synth),
           "--out", str(run), "train.accelerator=cpu", "train.devices=2", "train.strategy=ddp",
           "train.max_steps=6", "train.val_every=3", "train.batch_size=4",
           "model.restart_every=2", *FAST]  # dead-code restarts happen, and must agree across ranks
    env = {**os.environ, "GENIE_TEST_RANK_DIR": str(dumps), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0, rank1 = (torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert set(rank0["batches"]).isdisjoint(rank1["batches"])  # each rank trained on its own clips
    assert len(rank0["batches"]) == len(rank1["batches"]) == 6
    for key, value in rank0["end"].items():
        assert torch.equal(value, rank1["end"][key]), key
    moved = [k for k in rank0["end"] if not torch.equal(rank0["end"][k], rank0["start"][k])]
    assert "vq.codebook" in moved and len(moved) > len(rank0["end"]) // 2

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    for key, value in rank0["end"].items():
        assert torch.equal(ckpt["state_dict"][f"model.{key}"], value), key

    resumed_from = {}
    monkeypatch.setattr(TokenizerModule, "on_train_start", lambda self: resumed_from.update(_weights(self)))
    args = ["train", "tokenizer", "--data", str(synth), "--out", str(run), "--resume",
            "train.devices=1", "train.strategy=auto", "train.max_steps=8", *FAST]
    assert main(args) == 0
    for key, value in rank0["end"].items():
        assert torch.equal(resumed_from[key], value), key
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    assert main(["export", str(run), "--out", str(tmp_path / "bundle")]) == 0


def _record_rank_during_fit(out: Path) -> None:
    """Patch TokenizerModule so each rank saves {"start", "end": weights, "batches": [sha1]} to out."""
    seen: dict = {"batches": []}

    def on_train_start(self):
        seen["start"] = _weights(self)

    def on_train_batch_start(self, batch, batch_idx):
        seen["batches"].append(hashlib.sha1(batch["frames"].numpy().tobytes()).hexdigest())

    def on_train_end(self):
        out.mkdir(parents=True, exist_ok=True)
        torch.save({**seen, "end": _weights(self)}, out / f"rank{self.global_rank}.pt")

    TokenizerModule.on_train_start = on_train_start
    TokenizerModule.on_train_batch_start = on_train_batch_start
    TokenizerModule.on_train_end = on_train_end


if __name__ == "__main__":
    _record_rank_during_fit(Path(os.environ["GENIE_TEST_RANK_DIR"]))
    sys.exit(main(sys.argv[1:]))
