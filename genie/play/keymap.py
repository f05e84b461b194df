"""The player's key map: which latent action each movement key plays.

A world's latent actions are ids 0..A-1 that the LAM found without labels; nothing says which one
is "left". The map binds the keys KEYS (left, right, up, down, jump, noop) to latent actions by one
of two methods.

labels  (`genie keymap BUNDLE --data LABELED`): footage with true actions (a shard's `actions`
        and `action_names`). World.infer_actions labels every transition; each key gets the latent
        action that co-occurs with its true action most *above that latent's base rate*,
        argmax_l P(l | true) - P(l), so a code the LAM uses everywhere does not win every key.
        True action names matched (case-insensitive, exact): left, right, up, down, jump (else
        up: CoinRun's UP jumps), noop (else no-op, none). Keys without a match use the model.
model   (no labels; also what the player does at start when the bundle has no map): every latent
        action is held for `steps` frames from a few prompts, the same prompt and seed for all
        actions, and each action's motion (dx, dy) in px/frame (x right, y down) is the sum of
          camera:  minus the global shift between consecutive frames (genie.eval.metrics.view_shift:
                   phase correlation), beyond the median over actions;
                   a world whose view follows the player (CoinRun) shows a move right as the
                   scene moving left;
          object:  the centroid of what changed since the prompt, on frames aligned by the
                   shift all actions share (a scrolling background), counting only change beyond
                   what every action changed; the changed region covers the old and the new place
                   of what moved, so it moved twice its centroid's offset from the other actions'
                   centroids; weighted by how much changed relative to the action that changed
                   most (at least MIN_MASS), so a faint flicker is no move; not counted for an
                   action that shifts the scene itself (>= 1 px beyond the shared shift): its
                   change is all scene, and the camera term carries its motion.
        Then noop = the action whose frames change least (mean |frame t - frame t-1|), and
        left/right/up/down are assigned greedily, best (direction, action) pair first, each action
        used once while enough remain (noop excluded when A >= 5); the score of action a for
        direction u is motion.u - |motion x u| / 2. jump = up: from pixels alone a jump and a move
        up look alike. A direction whose action scores below MIN_MOVE is reported as weak (nothing
        visibly moves that way, yet the key still plays its best match).

Where it is stored: a folder bundle gets "keymap" (and "keymap_info": method, per-action motion)
in its config.json, rewritten atomically (temp file + os.replace); a one-file bundle
X.safetensors gets X.keymap.json beside it (its config lives inside the weights file, and
rewriting weights to store six integers is not worth it). A keymap file is a JSON object
{"left": 3, "right": 1, ...} with any subset of KEYS (`--keymap FILE` on the player).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genie.errors import GenieError

KEYS = ("left", "right", "up", "down", "jump", "noop")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}  # (dx, dy)
LABEL_NAMES = {"left": ("left",), "right": ("right",), "up": ("up",), "down": ("down",),
               "jump": ("jump", "up"), "noop": ("noop", "no-op", "none")}
MIN_MASS = 4 * 255.0  # change (gray levels x pixels) below this, e.g. 2x2 pixels turned over, is no object
MIN_MOVE = 0.25  # px/frame: a key whose action moves less that way (a pixel in 4 frames) is weak


# ---------------------------------------------------------------------- from the model
def measure_motion(rollouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rollouts uint8 [P, A, K+1, H, W, 3]: from each of P starts (frame 0, the same for every
    action), latent action a held for K >= 1 steps. Returns (motion float [A, 2] px/frame as
    (dx, dy), x right, y down; change float [A] mean |frame t - frame t-1| per pixel)."""
    from genie.eval.metrics import view_shift

    gray = rollouts.astype(np.float32).mean(-1)  # [P, A, K+1, H, W]
    p, a, k1, h, w = gray.shape
    shift = np.cumsum(view_shift(gray[..., None]), axis=2)  # [P, A, K, 2] total shift of frame t from frame 0
    common = np.median(shift, axis=1, keepdims=True)  # [P, 1, K, 2] what every action shifts (a scroll)
    steps = np.arange(1, k1, dtype=np.float32)[:, None]  # [K, 1]
    camera = -(shift - common) / steps  # [P, A, K, 2]

    # object: change since frame 0 on frames aligned by the common shift, beyond what every action
    # changed; only where the action did not shift the scene itself (else its change is all scene)
    change = np.zeros((p, a, k1 - 1, h, w), np.float32)
    for i in np.ndindex(p, a, k1 - 1):
        sx, sy = np.rint(common[i[0], 0, i[2]]).astype(int)
        aligned = np.roll(gray[i[0], i[1], i[2] + 1], (-sy, -sx), axis=(0, 1))  # aligned(x) = frame(x + s)
        valid = np.zeros((h, w), bool)
        valid[max(0, -sy) : h - max(0, sy), max(0, -sx) : w - max(0, sx)] = True
        change[i] = np.abs(aligned - gray[i[0], i[1], 0]) * valid
    own = np.maximum(change - change.min(axis=1, keepdims=True), 0)  # [P, A, K, H, W]
    still = np.linalg.norm(shift - common, axis=-1) < 1  # [P, A, K]
    total = own.sum((-1, -2)) + 1e-6  # [P, A, K]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    centre = np.stack([(own * xx).sum((-1, -2)), (own * yy).sum((-1, -2))], -1) / total[..., None]  # [P,A,K,2]
    mass = total * still + 1e-6
    ref = (centre * mass[..., None]).sum(1, keepdims=True) / mass.sum(1, keepdims=True)[..., None]
    weight = mass / np.maximum(mass.max(axis=1, keepdims=True), MIN_MASS)  # [P, A, K] in 0..1
    obj = 2 * (centre - ref) / steps * weight[..., None]

    motion = (camera + obj).mean((0, 2))  # [A, 2]
    step_change = np.abs(np.diff(gray, axis=2)).mean((0, 2, 3, 4))  # [A]
    return motion, step_change


def keymap_from_motion(motion: np.ndarray, change: np.ndarray) -> tuple[dict[str, int], dict]:
    """Per-action motion [A, 2] and change [A] (measure_motion) -> (keymap over KEYS, info)."""
    num = len(change)
    noop = int(np.argmin(change))
    candidates = [x for x in range(num) if x != noop] if num >= 5 else list(range(num))
    dirs = list(DIRECTIONS)
    u = np.array([DIRECTIONS[d] for d in dirs], np.float32)  # [4, 2]
    along = motion @ u.T  # [A, 4]
    across = np.abs(motion[:, :1] * u[:, 1] - motion[:, 1:] * u[:, 0])  # |m x u|, [A, 4]
    score = along - 0.5 * across
    keymap: dict[str, int] = {"noop": noop}
    free, todo = list(candidates), list(range(len(dirs)))
    while todo:
        pool = free or candidates  # more directions than actions: reuse
        d, x = max(((d, x) for d in todo for x in pool), key=lambda dx: score[dx[1], dx[0]])
        keymap[dirs[d]] = int(x)
        todo.remove(d)
        if x in free:
            free.remove(x)
    keymap["jump"] = keymap["up"]
    weak = [d for j, d in enumerate(dirs) if score[keymap[d], j] < MIN_MOVE]
    info = {"method": "model", "weak": weak,
            "motion": [[round(float(v), 3) for v in m] for m in motion],
            "change": [round(float(c), 3) for c in change]}
    return {k: keymap[k] for k in KEYS}, info


def model_rollouts(world, prompts: np.ndarray, steps: int = 4, seeds: int = 2, seed: int = 0) -> np.ndarray:
    """Hold every latent action for `steps` frames from each prompt (uint8 [P,H,W,C], any size),
    `seeds` seeds each, in one batch of P*seeds*A worlds -> uint8 [P*seeds, A, steps+1, H, W, 3]."""
    from data_pipeline.ingest import to_frame

    a, size = world.num_actions, world.frame_shape[0]
    shape = world.frame_shape  # sizes may differ: convert by the World's rule before stacking
    prompts = np.stack([img if img.shape == shape and img.dtype == np.uint8 else to_frame(img, size) for img in prompts])
    starts = np.repeat(prompts, seeds * a, axis=0)  # [P*S*A, H, W, 3]
    world_seeds = np.repeat(seed + np.arange(len(prompts) * seeds), a).tolist()  # one seed per (prompt, seed)
    actions = np.tile(np.arange(a), len(prompts) * seeds)
    frames = [world.reset(starts, seed=world_seeds)]
    frames += [world.step(actions) for _ in range(steps)]
    out = np.stack(frames, axis=1)  # [P*S*A, K+1, H, W, 3]
    return out.reshape(-1, a, *out.shape[1:])


def model_keymap(world, prompts: np.ndarray, steps: int = 4, seeds: int = 2, seed: int = 0):
    """The model method end to end: -> (keymap, info)."""
    motion, change = measure_motion(model_rollouts(world, prompts, steps, seeds, seed))
    keymap, info = keymap_from_motion(motion, change)
    info.update(prompts=int(len(prompts)), seeds=seeds, steps=steps)
    return keymap, info


# ---------------------------------------------------------------------- from labels
def keymap_from_labels(latent: np.ndarray, true: np.ndarray, names: list[str], num_actions: int
                       ) -> tuple[dict[str, int], dict]:
    """latent, true int [N]: the latent and the true action of the same transitions (true -1 =
    unknown); names[i] names true action i. -> (map of the KEYS whose name was found, info)."""
    from genie.eval.action_map import fit_action_map

    true = np.asarray(true)
    if not (true >= 0).any():
        raise GenieError("the labeled footage has no known true actions (all -1)")
    classes = max(len(names), int(true.max()) + 1)
    _, counts = fit_action_map(latent, true, num_actions, classes)  # [latent, true] co-occurrences
    base = counts.sum(1) / counts.sum()  # P(latent)
    lower = [str(n).lower() for n in names]
    keymap, matched = {}, {}
    for key, wanted in LABEL_NAMES.items():
        for name in wanted:
            ids = [i for i, n in enumerate(lower) if n == name and counts[:, i].sum() > 0]
            if ids:
                column = counts[:, ids].sum(1)
                keymap[key] = int(np.argmax(column / column.sum() - base))
                matched[key] = names[ids[0]]
                break
    info = {"method": "labels", "matched": matched, "transitions": int(counts.sum()),
            "counts": counts.tolist(), "action_names": list(names)}
    return keymap, info


def labeled_transitions(world, data: str | Path, max_transitions: int = 4096):
    """Shards with true actions -> (latent int [N], true int [N], names) over their episodes in
    order, at most max_transitions; true actions are remapped to one list of names."""
    from data_pipeline.shards import find_shards, read_episodes, read_shard_info

    names: list[str] = []
    latent, true, skipped = [], [], []
    total = 0
    for shard in find_shards(data):
        info = read_shard_info(shard)
        if not info.has_actions or not info.action_names:
            skipped.append(shard.name)
            continue
        remap = np.array([_index(names, n) for n in info.action_names] + [-1])  # -1 stays -1
        for ep in read_episodes(None, shards=[shard]):
            if total >= max_transitions:
                break
            if len(ep.frames) < 2:
                continue
            n = min(len(ep.frames), max_transitions - total + 1)
            acts = ep.actions[: n - 1]
            acts = np.where((acts >= 0) & (acts < len(info.action_names)), acts, -1)
            latent.append(world.infer_actions(ep.frames[:n]))
            true.append(remap[acts])
            total += n - 1
    if not latent:
        why = f" ({', '.join(skipped)} have no true actions or action names)" if skipped else ""
        raise GenieError(f"{data}: no labeled episodes{why}; pass shards recorded with true actions "
                         "(genie record ...), or leave --data out to compute the map from the model")
    return np.concatenate(latent), np.concatenate(true), names


def _index(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


# ---------------------------------------------------------------------- storing and reading
def check_keymap(keymap, num_actions: int, source: str) -> dict[str, int]:
    """Validate {key: latent action}: keys among KEYS, ints in 0..num_actions-1 (GenieError)."""
    if not isinstance(keymap, dict):
        raise GenieError(f"{source}: a keymap must be a JSON object like {{\"left\": 3, \"right\": 1}}")
    unknown = sorted(set(keymap) - set(KEYS))
    if unknown:
        raise GenieError(f"{source}: unknown key {unknown[0]!r} in the keymap; known keys: {', '.join(KEYS)}")
    for key, action in keymap.items():
        if isinstance(action, bool) or not isinstance(action, int) or not 0 <= action < num_actions:
            raise GenieError(f"{source}: keymap {key!r} is {action!r}, but this world's latent actions "
                             f"are 0..{num_actions - 1}")
    return dict(keymap)


def read_keymap_file(path: str | Path, num_actions: int) -> dict[str, int]:
    path = Path(path)
    if not path.is_file():
        raise GenieError(f"{path}: keymap file not found (write one with `genie keymap BUNDLE --out {path}`)")
    try:
        keymap = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise GenieError(f"{path}: not valid JSON ({err})") from None
    return check_keymap(keymap, num_actions, str(path))


def sidecar(bundle: Path) -> Path:
    """Where a one-file bundle's keymap lives: X.safetensors -> X.keymap.json."""
    return bundle.with_name(bundle.stem + ".keymap.json")


def bundle_keymap(bundle: str | Path, config: dict, num_actions: int) -> dict[str, int] | None:
    """The keymap stored with a bundle (config.json's "keymap", or the one-file sidecar), or None."""
    bundle = Path(bundle)
    if bundle.is_dir():
        keymap = config.get("keymap")
        return None if keymap is None else check_keymap(keymap, num_actions, str(bundle / "config.json"))
    return read_keymap_file(sidecar(bundle), num_actions) if sidecar(bundle).is_file() else None


def store_keymap(bundle: str | Path, keymap: dict[str, int], info: dict) -> Path:
    """Store a keymap with a bundle (see the module docstring); returns the file written."""
    bundle = Path(bundle)
    if bundle.is_dir():
        path = bundle / "config.json"
        config = json.loads(path.read_text())
        config["keymap"], config["keymap_info"] = keymap, info
        _write_json(path, config)
        return path
    _write_json(sidecar(bundle), keymap)
    return sidecar(bundle)


def _write_json(path: Path, obj) -> None:
    from genie.files import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


# ---------------------------------------------------------------------- `genie keymap`
def compute_keymap(world, prompts: np.ndarray, data: str | Path | None = None, steps: int = 4,
                   seed: int = 0) -> tuple[dict[str, int], dict]:
    """Labels from `data` where given, the model (rolled out from `prompts`) for the other keys."""
    keymap, info = {}, {}
    if data is not None:
        keymap, info = keymap_from_labels(*labeled_transitions(world, data), world.num_actions)
        info["data"] = str(data)
    if set(keymap) != set(KEYS):
        found, model_info = model_keymap(world, prompts, steps=steps, seed=seed)
        keymap = {**found, **keymap}
        info = {**model_info, **info, "method": "labels+model" if info else "model"}
    return {k: keymap[k] for k in KEYS}, info


def format_keymap(keymap: dict[str, int]) -> str:
    return "  ".join(f"{k}={keymap[k]}" for k in KEYS if k in keymap)


def format_motion(info: dict) -> str:
    """A table of the model method's per-action measurements."""
    if "motion" not in info:
        return ""
    rows = ["latent  dx px/frame  dy px/frame  change"]
    for a, ((dx, dy), c) in enumerate(zip(info["motion"], info["change"])):
        rows.append(f"{a:>6}  {dx:>+11.2f}  {dy:>+11.2f}  {c:>6.2f}")
    return "\n".join(rows)


def run_keymap(bundle: str, data: str | None = None, out: str | None = None, prompt: str | None = None,
               steps: int = 4, seed: int = 0, device: str = "auto", log=print) -> Path:
    """`genie keymap`: compute the map, store it with the bundle (or write `out`), print it."""
    from data_pipeline.ingest import read_prompt_frames
    from data_pipeline.shards import episode_starts
    from genie.bundle import bundle_prompts
    from genie.world import World

    world = World.load(bundle, device=device)
    if prompt is not None:
        prompts = read_prompt_frames(prompt, 1)
    elif data is not None:
        prompts = episode_starts(data, 4)
    else:
        prompts = bundle_prompts(bundle)[:4]
        if not len(prompts):
            log("keymap: no --prompt or --data and the bundle ships no prompts/: rolling out from a gray frame")
            prompts = np.full((1, *world.frame_shape), 128, np.uint8)
    keymap, info = compute_keymap(world, prompts, data=data, steps=steps, seed=seed)
    if info.get("motion"):
        log(format_motion(info))
    if info.get("matched"):
        log(f"keymap: {info['transitions']} labeled transitions; true actions matched: "
            + ", ".join(f"{k}={n}" for k, n in info["matched"].items()))
    if info.get("weak"):
        log(f"keymap: weak (no latent action moves that way): {', '.join(info['weak'])}")
    moves = [keymap[k] for k in DIRECTIONS]
    if len(set(moves)) < len(moves):
        log("keymap: some of left/right/up/down share a latent action (too few distinct actions in this world, "
            "or its LAM uses few codes: see `genie eval`)")
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, keymap)
    else:
        path = store_keymap(bundle, keymap, info)
    log(f"keymap ({info['method']}): {format_keymap(keymap)}")
    log(f"wrote {path}")
    return path
