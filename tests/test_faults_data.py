"""What a user types at `genie record`, `genie ingest` and `genie data inspect` never loses data, hangs
or ends in a traceback.

An interrupted recording is finished by running the same command again (its complete shards are
kept, its stale temp files removed), `genie data inspect` says what an interruption left behind,
and `--verify` finds a shard damaged in the middle of its frames.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from data_pipeline.ingest import ingest
from data_pipeline.record import record
from data_pipeline.shards import find_shards
from genie.cli import main
from genie.errors import GenieError

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# 200 episodes of 40 frames, 10 episodes a shard: 20 shards, long enough to be stopped halfway
RECORD = ["record", "--env", "synthetic", "--episodes", "200", "--max-steps", "40", "--frames-per-shard", "400"]


def genie(capsys, *argv) -> tuple[int, str, str]:
    """Run `genie ARGV` in this process -> (exit status, stdout, its one stderr line or "")."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's errors, an interrupted command
        code = stop.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 1 and "Traceback" not in err, err
    return code, out, lines[0] if lines else ""


def stop_recording(out: Path, sig: int) -> subprocess.CompletedProcess:
    """Start `genie record RECORD --out OUT` and send it `sig` once it has finished 3 shards."""
    proc = subprocess.Popen([sys.executable, "-m", "genie", *RECORD, "--out", str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.h5"))) < 3 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert 3 <= len(list(out.glob("*.h5"))) < 20, "the recording was not stopped halfway"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def contents(folder: Path) -> list[tuple[str, bytes, bytes, bytes]]:
    """Each shard's name, frames, actions and episodes."""
    rows = []
    for path in find_shards(folder):
        with h5py.File(path, "r") as f:
            rows.append((path.name, f["frames"][()].tobytes(), f["actions"][()].tobytes(), f["episodes"][()].tobytes()))
    return rows


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The same recording, never interrupted."""
    out = tmp_path_factory.mktemp("whole")
    assert main([*RECORD, "--out", str(out)]) == 0
    return out


def test_a_killed_recording_is_listed_by_inspect_and_finished_by_the_same_command(whole, tmp_path, capsys):
    out = tmp_path / "data"
    killed = stop_recording(out, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    temps = list(out.glob("*.h5.tmp-*"))
    kept = {p.name: p.read_bytes() for p in out.glob("*.h5")}

    code, shown, err = genie(capsys, "data", "inspect", out)
    assert code == 0 and err == ""
    warning = [line for line in shown.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "unfinished recordings: synthetic-s0" in warning[0]
    assert all(p.name in warning[0] for p in temps) and "rerun the same `genie record` command" in warning[0]

    code, shown, err = genie(capsys, *RECORD, "--out", out)
    assert code == 0 and err == ""
    assert "finishing the interrupted recording" in shown and all(f"removed {p.name}" in shown for p in temps)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in whole.iterdir())  # no temp, no .json
    assert all(out.joinpath(name).read_bytes() == data for name, data in kept.items())  # kept as they were
    assert contents(out) == contents(whole)  # the finished recording is the uninterrupted one

    code, _, err = genie(capsys, *RECORD, "--out", out)  # now complete: refused as before
    assert code == 2 and "already has shards" in err


def test_ctrl_c_of_a_recording_is_one_line_and_the_same_command_finishes_it(whole, tmp_path, capsys):
    out = tmp_path / "data"
    stopped = stop_recording(out, signal.SIGINT)
    lines = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert stopped.returncode == 130 and len(lines) == 1 and "Traceback" not in stopped.stderr, stopped.stderr
    assert lines[0].startswith("genie: interrupted") and "same command" in lines[0]
    assert list(out.glob("*.tmp-*")) == []  # Ctrl-C drops the shard in progress itself
    code, _, err = genie(capsys, *RECORD, "--out", out)
    assert code == 0 and err == "" and contents(out) == contents(whole)


def test_an_unfinished_recording_with_other_settings_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "data"
    stop_recording(out, signal.SIGKILL)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = genie(capsys, *RECORD[:-1], "500", "--out", out)  # --frames-per-shard 500, not 400
    assert code == 2 and "unfinished recording synthetic-s0" in err and "frames_per_shard" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_temp_file_being_written_is_not_removed(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    busy = out / f"synthetic-s0-00000.h5.tmp-{os.getpid()}"  # a process that is running: this one
    busy.write_bytes(b"partial")
    with pytest.raises(GenieError, match="being written by process"):
        record("synthetic", out, 2, 8, log=None)
    assert busy.read_bytes() == b"partial"


def test_inspect_of_a_folder_of_only_stale_temp_files_says_what_they_are(tmp_path, capsys):
    (tmp_path / "synthetic-s0-00000.h5.tmp-999999999").write_bytes(b"partial")
    code, _, err = genie(capsys, "data", "inspect", tmp_path)
    assert code == 2 and "no shards" in err and "stale temp files" in err and "synthetic-s0-00000.h5.tmp" in err


def test_record_and_ingest_under_a_file_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = genie(capsys, "record", "--env", "synthetic", "--episodes", "1", "--max-steps", "4",
                         "--out", blocker / "data")
    assert code == 2 and "is a file" in err
    with pytest.raises(GenieError, match="is a file"):  # the library says the same, not NotADirectoryError
        record("synthetic", blocker / "data", 1, 4, log=None)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((16, 16, 3), 40 * i, np.uint8))
    with pytest.raises(GenieError, match="is a file"):
        ingest([frames], blocker / "data", size=16, log=lambda *_: None)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_record_into_a_read_only_folder_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(GenieError, match="not writable"):
            record("synthetic", locked / "data", 1, 4, log=None)
    finally:
        locked.chmod(0o700)


def corrupt_mid_file(shard: Path) -> None:
    """Flip 64 bytes in the middle of the middle chunk of the shard's frames (its metadata stays intact)."""
    with h5py.File(shard, "r") as f:
        frames = f["frames"].id
        chunk = frames.get_chunk_info(frames.get_num_chunks() // 2)
    at = chunk.byte_offset + chunk.size // 2
    with open(shard, "r+b") as f:
        f.seek(at)
        data = f.read(64)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def test_verify_finds_a_shard_damaged_mid_file(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["record", "--env", "synthetic", "--episodes", "12", "--max-steps", "40",
                 "--frames-per-shard", "160", "--out", str(data)]) == 0
    shards = find_shards(data)
    code, _, err = genie(capsys, "data", "inspect", data, "--verify")
    assert code == 0 and err == ""  # whole shards pass
    corrupt_mid_file(shards[1])
    code, _, err = genie(capsys, "data", "inspect", data)
    assert code == 0  # the metadata alone looks fine ...
    code, _, err = genie(capsys, "data", "inspect", data, "--verify")
    assert code == 2 and str(shards[1]) in err and "'frames'" in err and "1 of 3 shards" in err  # ... --verify reads it
    code, _, err = genie(capsys, "data", "inspect", shards[1], "--verify", "--json")
    assert code == 2 and str(shards[1]) in err
    assert json.loads(genie(capsys, "data", "inspect", shards[0], "--verify", "--json")[1])["total"]["episodes"] == 4


def test_rerunning_a_killed_ingest_removes_its_stale_temp_file(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((16, 16, 3), 40 * i, np.uint8))
    out = tmp_path / "data"
    out.mkdir()
    stale = out / "frames.h5.tmp-999999"  # left by an ingest that was killed (no such process)
    stale.write_bytes(b"half a shard")
    other = out / "frames-2.h5.tmp-999999"  # another input's: not ours to remove
    other.write_bytes(b"x")
    code, shown, _ = genie(capsys, "ingest", str(frames), "--out", str(out))
    assert code == 0 and not stale.exists() and other.exists() and "removed frames.h5.tmp-999999" in shown
    assert [p.name for p in find_shards(out)] == ["frames.h5"]
