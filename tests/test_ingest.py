"""Ingesting videos, GIFs and frame folders; the one image rule; strict, one-line errors."""

import cv2
import h5py
import numpy as np
import pytest

from data_pipeline.ingest import ingest, to_frame, to_rgb8
from data_pipeline.shards import find_shards, read_shard_info
from genie.cli import main


def run_cli(capfd, *argv):
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def colour_frames(n: int, h: int = 48, w: int = 80) -> list[np.ndarray]:
    """n RGB frames: left half red, right half a brightness ramp over time."""
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, : w // 2] = (220, 20, 20)
        f[:, w // 2 :] = 10 + 20 * i
        frames.append(f)
    return frames


def write_mp4(path, frames, fps=12):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_gif(path, frames, ms=100):
    anim = cv2.Animation()
    anim.frames, anim.durations = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames], [ms] * len(frames)
    assert cv2.imwriteanimation(str(path), anim)
    return path


def write_png_folder(folder, frames):
    folder.mkdir()
    for i, f in enumerate(frames):  # names sort naturally: f2 before f10
        cv2.imwrite(str(folder / f"f{i + 1}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


def read_all(shard):
    with h5py.File(shard) as f:
        return f["frames"][:]


def test_to_frame_resizes_short_side_and_centre_crops():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255  # the centre third survives the crop
    out = to_frame(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[:, 2:-2].min() == 255
    assert to_frame(np.full((16, 8, 3), 7, np.uint8), 32).shape == (32, 32, 3)  # growing works too


def test_to_rgb8_documented_rule():
    assert to_rgb8(np.full((2, 2), 9, np.uint8)).tolist() == [[[9, 9, 9]] * 2] * 2
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, :, :3], rgba[0, :, 3] = 200, (255, 0)  # opaque, transparent
    assert to_rgb8(rgba)[0].tolist() == [[200, 200, 200], [0, 0, 0]]
    assert to_rgb8(np.full((1, 1, 3), 65535, np.uint16)).tolist() == [[[255, 255, 255]]]
    assert to_rgb8(np.full((1, 1, 3), 0.5, np.float32)).tolist() == [[[128, 128, 128]]]


def test_ingest_mp4_gif_and_png_folder(tmp_path, capfd):
    frames = colour_frames(12)
    mp4 = write_mp4(tmp_path / "clip.mp4", frames, fps=12)
    gif = write_gif(tmp_path / "anim.gif", frames, ms=100)
    folder = write_png_folder(tmp_path / "shots", frames)
    code, out, err = run_cli(
        capfd, "ingest", str(mp4), str(gif), str(folder), "--out", str(tmp_path / "data")
    )
    assert code == 0, err
    infos = {p.stem: read_shard_info(p) for p in find_shards(tmp_path / "data")}
    assert sorted(infos) == ["anim", "clip", "shots"]
    assert [infos[k].fps for k in ("clip", "anim", "shots")] == [12, 10, 15]
    assert infos["clip"].source == "ingest:clip.mp4" and not infos["clip"].has_actions
    for name, info in infos.items():
        assert (
            info.num_frames == 12 and info.episodes.tolist() == [[0, 12]] and info.frame_shape == (64, 64, 3)
        )
        got = read_all(info.path).astype(int)
        assert abs(got[0, 32, 2] - [220, 20, 20]).max() < 40, name  # RGB order kept (red on the left)
        ramp = got[:, :, 40:].mean((1, 2, 3))  # region mean: GIF palettes dither single pixels
        assert (np.diff(ramp) > 5).all(), name  # frames kept in order (f2 before f10)


def test_ingest_is_all_or_nothing_and_keeps_earlier_data(tmp_path, capfd):
    data = tmp_path / "data"
    good = write_mp4(tmp_path / "good.mp4", colour_frames(5))
    assert run_cli(capfd, "ingest", str(good), "--out", str(data))[0] == 0
    before = (data / "good.h5").read_bytes()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    other = write_mp4(tmp_path / "other.mp4", colour_frames(5))
    code, _, err = run_cli(capfd, "ingest", str(other), str(bad), "--out", str(data))
    assert code == 2 and str(bad) in err
    assert sorted(p.name for p in data.iterdir()) == ["good.h5"]  # no other.h5, no temp files
    assert (data / "good.h5").read_bytes() == before
    code, _, err = run_cli(capfd, "ingest", str(good), "--out", str(data))
    assert code == 2 and "already exists" in err and (data / "good.h5").read_bytes() == before


def _png(folder, img):
    folder.mkdir()
    cv2.imwrite(str(folder / "0001.png"), img)
    return folder


@pytest.mark.parametrize(
    "name, img, mode",
    [
        ("gray", np.full((20, 20), 128, np.uint8), "8-bit grayscale"),
        ("rgba", np.full((20, 20, 4), 128, np.uint8), "8-bit RGBA"),
        ("deep", np.full((20, 20, 3), 40000, np.uint16), "16-bit RGB"),
    ],
)
def test_non_rgb8_frames_need_convert(tmp_path, capfd, name, img, mode):
    folder = _png(tmp_path / name, img)
    code, _, err = run_cli(capfd, "ingest", str(folder), "--out", str(tmp_path / "data"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(folder / "0001.png") in err and mode in err and "--convert" in err
    assert not (tmp_path / "data" / f"{name}.h5").exists()
    code, _, err = run_cli(capfd, "ingest", str(folder), "--out", str(tmp_path / "data"), "--convert")
    assert code == 0, err
    frame = read_all(tmp_path / "data" / f"{name}.h5")[0]
    expected = {"gray": 128, "rgba": 64, "deep": round(40000 / 257)}[name]  # alpha 128 on black -> ~64
    assert abs(int(frame.mean()) - expected) <= 1


def test_an_opaque_alpha_channel_is_no_reason_to_refuse(tmp_path, capfd):
    """OpenCV reads some GIFs and PNGs as RGBA with every pixel opaque: that is RGB."""
    img = np.dstack([np.full((20, 20, 3), 90, np.uint8), np.full((20, 20), 255, np.uint8)])
    folder = _png(tmp_path / "opaque", img)
    code, _, err = run_cli(capfd, "ingest", str(folder), "--out", str(tmp_path / "data"))
    assert code == 0, err
    assert read_all(tmp_path / "data" / "opaque.h5")[0].mean() == 90


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, capfd):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no frames here")
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    (tmp_path / "garbage.gif").write_bytes(b"GIF89a" + np.random.default_rng(2).bytes(100))
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "1.png").write_bytes(b"not a png")
    for name, problem in [
        ("missing.mp4", "does not exist"),
        ("empty", "no footage"),
        ("garbage.mp4", "cannot read video"),
        ("garbage.gif", "cannot read GIF"),
        ("frames", "cannot read image"),
    ]:
        code, out, err = run_cli(capfd, "ingest", str(tmp_path / name), "--out", str(tmp_path / "data"))
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("genie: error: ") and "Traceback" not in err, err
        assert str(tmp_path / name) in err and problem in err, err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_ingest_python_api_names_duplicate_stems_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [write_mp4(tmp_path / d / "run.mp4", colour_frames(3)) for d in "ab"]
    written = ingest(paths, tmp_path / "data", size=32, log=None)
    assert [p.name for p in written] == ["run.h5", "run-2.h5"]
    assert read_shard_info(written[1]).frame_shape == (32, 32, 3)
