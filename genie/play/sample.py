"""`genie sample`: roll a world out from a prompt image and save what it shows (GIF or PNG).

With --actions a,b,c the world takes those latent actions in turn. With --all-actions it runs one
world per latent action from the same prompt, each repeating its action, and stacks them as
rows (labelled with the action id) so a person sees what each action does.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from genie.errors import GenieError
from genie.pictures import frame_grid


def parse_actions(text: str, num_actions: int) -> list[int]:
    try:
        actions = [int(a) for a in text.replace(" ", "").split(",") if a != ""]
    except ValueError:
        raise GenieError(f"--actions {text!r}: expected comma-separated integers, e.g. 1,1,2") from None
    bad = [a for a in actions if not 0 <= a < num_actions]
    if bad or not actions:
        raise GenieError(f"--actions {text!r}: each action must be in 0..{num_actions - 1}")
    return actions


def rollout(world, prompt: np.ndarray, actions: np.ndarray, seed: int) -> np.ndarray:
    """actions int [B, T] -> frames uint8 [B, T+1, H, W, 3] (the prompt frame first)."""
    frames = [world.reset(np.broadcast_to(prompt, (actions.shape[0], *prompt.shape)), seed=seed)]
    frames += [world.step(actions[:, t]) for t in range(actions.shape[1])]
    return np.stack(frames, axis=1)


def label(frame: np.ndarray, text: str) -> np.ndarray:
    out = frame.copy()
    cv2.putText(out, text, (2, 10), cv2.FONT_HERSHEY_PLAIN, 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def compose(frames: np.ndarray, scale: int, labels: list[str] | None = None, pad: int = 2,
            cols: int = 1) -> list[np.ndarray]:
    """frames [B, T, H, W, 3] -> T images, the B worlds as tiles `cols` across (default: stacked as
    rows), upscaled and labelled."""
    b, t, h, w, _ = frames.shape
    big = frames.repeat(scale, axis=2).repeat(scale, axis=3)
    blank = np.full_like(big[0, 0], 255)  # fills the last row of tiles
    images = []
    for i in range(t):
        tiles = [label(big[k, i], labels[k]) if labels else big[k, i] for k in range(b)]
        tiles += [blank] * (-b % cols)
        images.append(frame_grid([np.stack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)], pad))
    return images


def save_animation(path: Path, images: list[np.ndarray], fps: float) -> None:
    """Write RGB images as an animated GIF (or a strip PNG when path ends in .png)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        strip = np.concatenate(images, axis=1)
        ok = cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    elif path.suffix.lower() == ".gif":
        anim = cv2.Animation()
        anim.frames = [cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in images]
        anim.durations = [int(1000 / fps)] * len(images)
        ok = cv2.imwriteanimation(str(path), anim)
    else:
        raise GenieError(f"{path}: --out must end in .gif or .png")
    if not ok:
        raise GenieError(f"{path}: could not write the file")


def run_sample(bundle: str, prompt: str, out: str, actions: str | None = None, all_actions: bool = False,
               length: int = 16, steps: int | None = None, temperature: float | None = None, seed: int = 0,
               scale: int = 3, fps: float = 8.0, device: str = "auto", compile: bool = False,
               precision: str = "auto", guidance: float | None = None, mbr: float | None = None) -> Path:
    from data_pipeline.ingest import read_prompt
    from genie.world import World

    if not actions and not all_actions:
        raise GenieError("say what to do: --actions 1,1,2,... or --all-actions")
    world = World.load(bundle, device=device, steps=steps, temperature=temperature, compile=compile,
                       precision=precision, guidance=guidance, mbr=mbr)
    image = read_prompt(prompt)
    if all_actions:
        acts = np.repeat(np.arange(world.num_actions)[:, None], length, axis=1)
        labels = [f"a={a}" for a in range(world.num_actions)]
    else:
        acts = np.array([parse_actions(actions, world.num_actions)])
        labels = None
    frames = rollout(world, image, acts, seed)
    path = Path(out)
    save_animation(path, compose(frames, scale, labels), fps)
    return path
