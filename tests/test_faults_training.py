"""What a user types at `genie train` and `genie export` never loses data, hangs or ends in a traceback.

Existing --out folders and files are refused (a bundle is replaced only with --force), bad train.*
values are one line before anything is created, Ctrl-C and SIGTERM save a checkpoint and exit 130,
and a run killed before its first checkpoint can be started afresh with --restart.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genie.bundle import load_tokenizer
from genie.cli import main
from genie.errors import GenieError
from genie.training.run import train_stage

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "tokenizer.yaml")
FAST = ["train.wandb=false", "train.progress_bar=false"]
ENV = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main(["record", "--env", "synthetic", "--episodes", "12", "--max-steps", "40", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """A finished two-step tokenizer run."""
    out = tmp_path_factory.mktemp("run") / "tok"
    assert main(["train", "tokenizer", "--config", TINY, "--data", str(data), "--out", str(out),
                 "train.max_steps=2", *FAST]) == 0
    return out


def genie(capsys, *argv) -> tuple[int, str]:
    """Run `genie ARGV` in this process -> (exit status, its one stderr line); fails unless stderr is one line."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return code, lines[0]


def snapshot(path: Path) -> dict:
    """Every file under `path` (or `path` itself) -> its bytes."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): p.read_bytes() for p in files}


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- genie export --------------------------------------------------------------------------------

@pytest.mark.parametrize("make, force", [("folder", False), ("folder", True), ("file", False), ("file", True),
                                         ("shard.safetensors", True)])
def test_export_never_replaces_what_is_not_a_bundle(run, tmp_path, capsys, make, force):
    out = tmp_path / ("mine" if make in ("folder", "file") else make)
    if make == "folder":
        out.mkdir()
        (out / "notes.txt").write_text("my notes\n")
    else:
        out.write_text("my data\n")
    before = snapshot(out)
    code, line = genie(capsys, "export", run, "--out", out, *(["--force"] if force else []))
    assert code == 2 and str(out) in line and "not a genie bundle" in line
    assert snapshot(out) == before and hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["bundle", "bundle.safetensors"])
def test_export_replaces_a_bundle_only_with_force(run, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["export", str(run), "--out", str(out)]) == 0
    if out.is_dir():  # what the user added to the bundle folder
        (out / "README.md").write_text("model card\n")
        (out / "prompts").mkdir()
        (out / "prompts" / "p0.png").write_bytes(b"png")
    before = snapshot(out)
    code, line = genie(capsys, "export", run, "--out", out)
    assert code == 2 and "already holds a genie bundle" in line and "--force" in line
    assert snapshot(out) == before
    assert main(["export", str(run), "--out", str(out), "--force"]) == 0
    load_tokenizer(out)
    if out.is_dir():
        assert (out / "README.md").read_text() == "model card\n" and (out / "prompts" / "p0.png").is_file()
    assert hidden_leftovers(tmp_path) == []


def test_export_does_not_swap_a_bundle_folder_for_a_file(run, tmp_path, capsys):
    folder = tmp_path / "b.safetensors"
    assert main(["export", str(run), "--out", str(tmp_path / "b")]) == 0
    (tmp_path / "b").rename(folder)  # a bundle folder under a one-file name
    before = snapshot(folder)
    code, line = genie(capsys, "export", run, "--out", folder, "--force")
    assert code == 2 and "same form" in line and snapshot(folder) == before


def test_export_under_a_file_is_one_line(run, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, line = genie(capsys, "export", run, "--out", tmp_path / "file" / "bundle")
    assert code == 2 and "is a file" in line and (tmp_path / "file").read_text() == "x"


# --- genie train: config values and --out ----------------------------------------------------------

BAD_VALUES = [("max_steps", "0"), ("batch_size", "0"), ("lr", "0"), ("lr", "-0.001"), ("val_fraction", "1.0"),
              ("val_fraction", "-0.1"), ("warmup_steps", "-1"), ("ckpt_every", "0"), ("val_every", "0"),
              ("grad_clip", "-1.0"), ("betas", "[0.9]"), ("num_workers", "-1"), ("seed", "-1"),
              ("max_minutes", "-1"), ("max_minutes", "-0.5")]


@pytest.mark.parametrize("key, value", BAD_VALUES, ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_bad_train_values_are_one_line_before_anything_is_created(data, tmp_path, capsys, key, value):
    out = tmp_path / "run"
    code, line = genie(capsys, "train", "tokenizer", "--config", TINY, "--data", data, "--out", out,
                       f"train.{key}={value}", *FAST)
    assert code == 2 and f"key '{key}'" in line and "must be" in line and value.strip("[]") in line
    assert not out.exists()


def test_train_into_a_path_under_a_file_is_one_line(data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"
    code, line = genie(capsys, "train", "tokenizer", "--config", TINY, "--data", data, "--out", out, *FAST)
    assert code == 2 and "is a file" in line
    with pytest.raises(GenieError, match="is a file"):  # the library says the same, not NotADirectoryError
        train_stage("tokenizer", TINY, str(data), str(out), ["train.max_steps=1", *FAST])
    assert (tmp_path / "file").read_text() == "x"


def test_resume_and_restart_together_are_refused(run, data, capsys):
    code, line = genie(capsys, "train", "tokenizer", "--data", data, "--out", run, "--resume", "--restart")
    assert code == 2 and "not both" in line


# --- genie train: interrupted runs -----------------------------------------------------------------

def start_training(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    """A `genie train` process that has started its steps (and is far from its first checkpoint), in a
    process group of its own (with its data-loading workers, if any)."""
    cmd = [sys.executable, "-m", "genie", "train", "tokenizer", "--config", TINY, "--data", str(data), "--out",
           str(out), "train.max_steps=10000", "train.ckpt_every=10000", "train.val_every=10000", *FAST, *extra]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if "new run" in line:
            time.sleep(1.0)  # into the training steps
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"training did not start: {proc.communicate()[1][-2000:]}")


def step_of(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


def test_a_run_killed_before_its_first_checkpoint_restarts(data, tmp_path, capsys):
    out = tmp_path / "run"
    proc = start_training(data, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (out / "config.yaml").is_file() and not (out / "checkpoints" / "last.ckpt").exists()
    (out / "notes.txt").write_text("mine\n")  # not the run's: --restart keeps it

    code, line = genie(capsys, "train", "tokenizer", "--config", TINY, "--data", data, "--out", out, *FAST)
    assert code == 2 and "before its first checkpoint" in line and "--restart" in line
    code, line = genie(capsys, "train", "tokenizer", "--data", data, "--out", out, "--resume", *FAST)
    assert code == 2 and "nothing to resume" in line and "--restart" in line

    assert main(["train", "tokenizer", "--config", TINY, "--data", str(data), "--out", str(out), "--restart",
                 "train.max_steps=3", *FAST]) == 0
    assert step_of(out / "checkpoints" / "last.ckpt") == 3
    assert [p.name for p in (out / "logs").iterdir()] == ["version_0"]  # the killed session's logs are gone
    assert (out / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["ctrl-c", "sigterm", "sigterm-to-the-group-with-a-loader-worker"])
def test_an_interrupted_run_saves_a_checkpoint_and_exits_130(data, tmp_path, sig, group):
    out = tmp_path / "run"
    # the group case: what a session's end or `kill -- -PGID` does; the worker gets the signal too
    proc = start_training(data, out, *(["train.num_workers=1"] if group else []))
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("genie: interrupted") and "Traceback" not in err, err
    last = out / "checkpoints" / "last.ckpt"
    saved = step_of(last)
    assert saved >= 1 and f"at step {saved}" in lines[0] and "--resume" in lines[0]
    assert list(out.rglob(".*tmp*")) == []  # no half-written checkpoint
    again = ["train", "tokenizer", "--data", str(data), "--out", str(out), *FAST]
    if sig == signal.SIGINT:  # started afresh before the first periodic checkpoint
        assert main([*again, "--config", TINY, "--restart", "train.max_steps=2"]) == 0
        assert step_of(last) == 2
    else:  # or continued from the one the interrupt saved
        assert main([*again, "--resume", f"train.max_steps={saved + 2}"]) == 0
        assert step_of(last) == saved + 2


@pytest.mark.slow  # two subprocess trainings with wandb: ~45 s
def test_a_normal_run_and_its_resume_print_no_warnings(data, tmp_path):
    """wandb (offline) on, as by default: no wandb WARNING, no Lightning checkpoint-folder warning on resume."""
    out = tmp_path / "tok"
    base = [sys.executable, "-m", "genie", "train", "tokenizer", "--data", str(data), "--out", str(out),
            "train.progress_bar=false", "train.val_every=100"]
    first = subprocess.run([*base, "--config", TINY, "train.max_steps=2"], env=ENV, capture_output=True, text=True)
    again = subprocess.run([*base, "--resume", "train.max_steps=4"], env=ENV, capture_output=True, text=True)
    for done in (first, again):
        assert done.returncode == 0, done.stderr
        text = done.stdout + done.stderr
        assert "WARNING" not in text and "Warning" not in text and "exists and is not empty" not in text, text
