"""The README's pictures of a trained world: what a player sees from three kinds of prompt, and
what each latent action does.

    python benchmarks/world_gifs.py --world worlds/coinrun --out benchmarks/figures

writes into --out (and prints the detail each prompt keeps after 8 steps, generated / prompt)
    prompt-sketch.png        a platformer sketch in pencil style (drawn here, stroke by stroke, from
                             a fixed seed: wobbly pencil lines on paper, a few coloured fills)
    <name>-prompts.gif       one scripted play-through (keys, through the bundle's key map) from
                             each prompt side by side: a frame of a held-out level (the bundle's
                             prompts/), the sketch, and a photo (matplotlib's sample photo of
                             Grace Hopper, which ships with the package)
    <name>-all-actions.gif   the `genie sample --all-actions` view from the held-out frame: each
                             latent action held for --length frames, one tile per action

Everything goes through genie.World (reset, step) with a fixed seed, so a rerun draws the same
frames. Pass --threads 1 on a busy CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_pipeline.ingest import read_prompt, to_frame  # noqa: E402
from genie.bundle import bundle_prompts  # noqa: E402
from genie.eval.metrics import detail  # noqa: E402
from genie.play.keymap import KEYS, bundle_keymap  # noqa: E402
from genie.play.sample import compose, rollout, save_animation  # noqa: E402

# The scripted play-through: (key, frames). Right along the level, a jump, back left, stand still.
SCRIPT = (("right", 6), ("jump", 3), ("right", 6), ("left", 4), ("noop", 3))


def photo_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def draw_sketch(size: int = 256, seed: int = 0) -> np.ndarray:
    """A platformer drawn the way a person would on paper: pencil outlines with a shaky hand,
    coloured-pencil fills. uint8 RGB [size, size, 3]."""
    rng = np.random.default_rng(seed)
    s = size / 256
    img = np.full((size, size, 3), (246, 243, 234), np.uint8)  # paper

    def stroke(points, color=(40, 40, 48), width=3, closed=False):
        pts = np.asarray(points, np.float64) * s
        if closed:
            pts = np.vstack([pts, pts[:1]])
        dense = []  # resample each segment and shake the hand a little
        for a, b in zip(pts[:-1], pts[1:]):
            n = max(2, int(np.linalg.norm(b - a) / (6 * s)))
            seg = a + (b - a) * np.linspace(0, 1, n)[:, None]
            dense.append(seg + rng.normal(0, 0.9 * s, seg.shape))
        line = np.round(np.vstack(dense)).astype(np.int32)
        cv2.polylines(img, [line], False, color, max(1, round(width * s)), cv2.LINE_AA)

    def fill(points, color):
        pts = np.round(np.asarray(points, np.float64) * s).astype(np.int32)
        layer = img.copy()
        cv2.fillPoly(layer, [pts], color, cv2.LINE_AA)
        cv2.addWeighted(layer, 0.55, img, 0.45, 0, dst=img)  # coloured pencil: the paper shows

    def box(x0, y0, x1, y1, color=None):
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        if color is not None:
            fill(corners, color)
        stroke(corners, closed=True)

    # sky scribbles and a sun
    fill([(0, 0), (256, 0), (256, 204), (0, 204)], (205, 228, 246))
    cv2.circle(img, (int(212 * s), int(38 * s)), int(16 * s), (250, 214, 90), -1, cv2.LINE_AA)
    stroke([(212 + 17 * np.cos(t), 38 + 17 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 24)])
    # ground: a row of bricks with grass on top
    fill([(0, 204), (256, 204), (256, 256), (0, 256)], (178, 120, 74))
    for x in range(0, 256, 32):
        box(x, 204, x + 32, 230)
        box(x - 16, 230, x + 16, 256)
    stroke([(0, 202), (256, 202)], color=(60, 140, 60), width=4)
    # floating platforms
    box(70, 140, 134, 154, (178, 120, 74))
    box(160, 100, 212, 114, (178, 120, 74))
    # a coin on the high platform
    cv2.circle(img, (int(186 * s), int(84 * s)), int(8 * s), (245, 200, 40), -1, cv2.LINE_AA)
    stroke([(186 + 9 * np.cos(t), 84 + 9 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 18)])
    # saw-tooth spikes on the ground
    stroke([(226, 202), (231, 190), (236, 202), (241, 190), (246, 202)], color=(170, 30, 30))
    # the hero: round head, body, legs, arms
    cv2.circle(img, (int(40 * s), int(158 * s)), int(9 * s), (250, 224, 190), -1, cv2.LINE_AA)
    stroke([(40 + 10 * np.cos(t), 158 + 10 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 18)])
    box(32, 168, 48, 188, (70, 110, 200))
    stroke([(35, 188), (31, 201)])
    stroke([(45, 188), (49, 201)])
    stroke([(32, 172), (24, 182)])
    stroke([(48, 172), (56, 180)])
    # clouds: puffs of white with pencil rims
    for cx, cy in ((60, 44), (122, 66)):
        puffs = ((cx - 12, cy, 9), (cx, cy - 6, 11), (cx + 13, cy, 9))
        for px, py, r in puffs:
            cv2.circle(img, (int(px * s), int(py * s)), int(r * s), (255, 255, 255), -1, cv2.LINE_AA)
        for px, py, r in puffs:
            stroke([(px + r * np.cos(t), py + r * np.sin(t)) for t in np.linspace(np.pi * 0.9, np.pi * 2.1, 12)], width=2)
        stroke([(cx - 21, cy + 4), (cx + 22, cy + 4)], width=2)
    return img


def script_actions(keymap: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    keys = [key for key, n in SCRIPT for _ in range(n)]
    return np.array([keymap[k] for k in keys]), keys


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="worlds/coinrun", help="world bundle (default: worlds/coinrun)")
    parser.add_argument("--out", default="benchmarks/figures", help="folder for the pictures")
    parser.add_argument("--name", help="file name prefix (default: the bundle folder's name)")
    parser.add_argument("--length", type=int, default=16, help="frames per action in the all-actions view")
    parser.add_argument("--scale", type=int, default=3, help="upscale factor (nearest neighbour)")
    parser.add_argument("--fps", type=float, default=6.0, help="GIF frame rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from genie.world import World

    if args.threads:
        torch.set_num_threads(args.threads)
    bundle, out = Path(args.world), Path(args.out)
    name = args.name or bundle.name
    world = World.load(bundle, device="auto")
    keymap = bundle_keymap(bundle, getattr(world, "bundle_config", {}), world.num_actions)
    if not keymap or set(keymap) != set(KEYS):
        raise SystemExit(f"{bundle}: no stored key map; run `genie keymap {bundle}` first")
    held_out = bundle_prompts(bundle)
    if not held_out:
        raise SystemExit(f"{bundle}: no prompts/ images to start from")

    out.mkdir(parents=True, exist_ok=True)
    sketch = draw_sketch()
    cv2.imwrite(str(out / "prompt-sketch.png"), cv2.cvtColor(sketch, cv2.COLOR_RGB2BGR))
    prompts = {"held-out level": held_out[0], "sketch": sketch, "photo": read_prompt(photo_path())}

    # one play-through per prompt (the World converts each prompt to its frame size)
    actions, keys = script_actions(keymap)
    frames = np.concatenate([rollout(world, p, actions[None], args.seed) for p in prompts.values()])
    captions = ["start"] + keys
    images = [np.vstack([im, caption_bar(im.shape[1], f"key: {c}")])
              for im, c in zip(compose(frames, args.scale, list(prompts), pad=3, cols=len(prompts)), captions)]
    save_animation(out / f"{name}-prompts.gif", images, args.fps)
    # the bar for sketches and photos: detail kept after 8 steps, against the prompt itself
    # (at the world's frame size, as the World converts it)
    start = torch.from_numpy(np.stack([to_frame(p, world.frame_shape[0]) for p in prompts.values()]))
    kept = detail(torch.from_numpy(frames[:, min(8, frames.shape[1] - 1)])) / detail(start)
    print("detail kept after 8 scripted steps (generated / prompt): "
          + ", ".join(f"{k} {v:.2f}" for k, v in zip(prompts, kept.tolist())))

    # what each latent action does, from the held-out frame
    a = world.num_actions
    frames = rollout(world, held_out[0], np.repeat(np.arange(a)[:, None], args.length, axis=1), args.seed)
    names = {v: k for k, v in reversed(list(keymap.items()))}
    labels = [f"a={i}" + (f" {names[i]}" if i in names else "") for i in range(a)]
    save_animation(out / f"{name}-all-actions.gif", compose(frames, args.scale, labels, pad=3, cols=min(a, 3)),
                   args.fps)
    print(f"wrote {out}/prompt-sketch.png, {name}-prompts.gif, {name}-all-actions.gif")


def caption_bar(width: int, text: str, height: int = 16) -> np.ndarray:
    bar = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(bar, text, (4, height - 4), cv2.FONT_HERSHEY_PLAIN, 1.0, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


if __name__ == "__main__":
    main()
