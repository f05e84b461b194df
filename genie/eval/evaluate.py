"""`genie eval`: how good is a world, the way a player sees it? Measured on footage it did not train on.

For N clips of `prompt + horizon` frames (horizon 30 by default) from DATA (pass held-out episodes):
  tokenizer      PSNR / SSIM of the tokenizer's round trip
  next-frame     PSNR of frame t generated from the real prompt with the actions the LAM infers
                 from the real clip, for t = 1..horizon (t = 1 is the next-frame PSNR)
  hold still     the gain of those frames over holding the world's own reconstruction of the prompt
                 still: PSNR(generated_t, real_t) - PSNR(reset frame, real_t) for t = 1..16, and its
                 minimum. Doing nothing scores 0: a world must be >= 0 everywhere
  detail         mean spatial gradient (genie.eval.metrics.detail) of generated frames over that of the
                 real frames at t = 8, 16, 30: a world that melts into flat patches falls towards 0,
                 one that fills frames with noise rises above 1
  motion         does the view move when the real one does? The view's shift from frame to frame
                 (genie.eval.metrics.view_shift, phase correlation) of the generated and the real frames,
                 t = 1..16: mean px/frame of each, and the share of real moves (>= 1 px) that the
                 world follows (moves >= half as far, within 45 degrees) and of real still frames it
                 keeps still (< 1 px). A world that only holds its prompt follows none: it can win
                 the hold-still gain and the detail kept, never this
  delta_psnr     Genie's controllability metric: PSNR(real, generated with inferred actions)
                 - PSNR(real, generated with random actions), per t up to 8; reported at t = 4. It rewards
                 a world whose no-op keeps the frame while other actions destroy it, so it is read
                 beside the three above, never alone
  lam            codebook usage (share of actions used, perplexity of their histogram)
  probe          when DATA has true actions: a lookup probe (each latent action -> the true action
                 it co-occurs with most) over every transition of DATA's episodes (up to 20,000),
                 fit on half of the episodes, accuracy on the other half, beside the majority
                 baseline of that half; on the raw actions, on the footage's action classes
                 (data_pipeline.actions: CoinRun's 6 movement classes) and on horizontal moves alone
                 (left / none / right)
With --judge JUDGE (genie judge train: a supervised inverse-dynamics model, the reference):
  judge          its accuracy on the same held-out transitions; the probe as a share of it
  key following  from the first frames of DATA's episodes (level starts), hold for 8 steps the
                 latent action seen most often (relative to its use) with a left move, with a right
                 move and with no horizontal move in the probe's fit half, and separately the
                 bundle's key map (left, right, noop); the judge reads each generated transition;
                 the share read as the held direction. Beside it the same share for the real game:
                 DATA's held-key footage (`genie record --policy hold`, shards tagged ":hold"), read
                 by the same judge. Held-key shards are used for this only, never for clips or probe.
Both rollouts of a clip use the same seed, so only the actions differ. A tokenizer-only bundle
gets the tokenizer row alone. --grid writes a PNG: originals above their reconstructions.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genie.errors import GenieError
from genie.eval.action_map import direction_latents, fit_half, lookup_probe
from genie.eval.metrics import detail, psnr, ssim, view_shift

HOLD_STILL_T = 16  # the hold-still gain is reported for t = 1..16
DETAIL_T = (8, 16, 30)  # detail kept is reported at these t
KEY_STEPS = 8  # key following: steps each direction's latent is held
MOVE_PX = 1.0  # motion: a frame-to-frame shift of the view this long (px) is a move, shorter is still
FOLLOW_COS = float(np.cos(np.radians(45)))  # motion: a generated move within 45 degrees of the real one follows it
DELTA_T = 8  # delta-t PSNR's random-action rollouts stop here (it is read at t = 4)
DIRECTIONS = {"left": -1, "right": 1, "none": 0}
KEYMAP_KEYS = {"left": "left", "right": "right", "none": "noop"}  # direction -> the player's key


def split_shards(data: str) -> tuple[list[Path], list[Path]]:
    """DATA's shards -> (ordinary footage, held-key footage tagged by `genie record --policy hold`)."""
    from data_pipeline.policy import HOLD_SUFFIX
    from data_pipeline.shards import find_shards, read_shard_info

    shards = find_shards(data)
    hold = [p for p in shards if read_shard_info(p).source.endswith(HOLD_SUFFIX)]
    clips = [p for p in shards if p not in hold]
    if not clips:
        raise GenieError(f"{data}: holds only held-key footage (--policy hold); add ordinary footage to evaluate on")
    return clips, hold


def check_frame_size(shards: list[Path], frame_shape: tuple[int, ...], bundle: str) -> None:
    """GenieError naming the first shard whose frames are not the bundle's size."""
    from data_pipeline.shards import read_shard_info

    for path in shards:
        shape = tuple(read_shard_info(path).frame_shape)
        if shape != tuple(frame_shape):
            raise GenieError(f"{path} holds {shape[0]}x{shape[1]} frames but {bundle} is a {frame_shape[0]}x"
                             f"{frame_shape[1]} world; evaluate on footage of its size (genie record or ingest "
                             f"--size {frame_shape[0]})")


def sample_clips(data: str, length: int, max_clips: int, seed: int = 0, shards: list[Path] | None = None):
    """-> (frames uint8 [N,length,H,W,3], true actions int [N,length] (-1 unknown), episode id [N])
    of DATA's shards (or the given `shards`)."""
    from data_pipeline.dataset import ClipDataset
    from data_pipeline.shards import find_shards

    shards = find_shards(data) if shards is None else shards
    dataset = ClipDataset(shards, clip_len=length, stride=length)
    if len(dataset) == 0:
        raise GenieError(f"{data}: no episode has {length} frames for evaluation; lower --horizon")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(dataset), size=min(max_clips, len(dataset)), replace=False))
    items = [dataset[int(i)] for i in picks]
    episodes = np.array([dataset.episode_of(int(i)) for i in picks])
    frames = torch.stack([it["frames"] for it in items]).numpy()
    actions = torch.stack([it["actions"] for it in items]).numpy()
    return frames, actions, episodes


def episode_transitions(world, shards: list[Path], max_transitions: int = 20_000, judge=None) -> dict:
    """Every transition of the shards' episodes (in order, up to max_transitions) with its latent
    action (World.infer_actions over the whole episode), true action and episode id, and with a
    judge its class as the judge reads it: -> {"latent", "true" (-1 unknown), "episode", "judged"
    (or None)}, each int [M]. The probe uses these rather than the eval clips: a few hundred
    transitions make a noisy probe."""
    from data_pipeline.shards import read_episodes

    latent, true, episode, judged, count = [], [], [], [], 0
    for eid, ep in enumerate(read_episodes(None, shards=shards)):
        if count >= max_transitions:
            break
        if len(ep.frames) < 2:
            continue
        latent.append(world.infer_actions(ep.frames))
        true.append(ep.actions[:-1])  # actions[t] is the true action of transition t -> t+1
        episode.append(np.full(len(ep.frames) - 1, eid))
        if judge is not None:
            judged.append(judge.read(ep.frames[None])[0])
        count += len(ep.frames) - 1
    cat = np.concatenate
    return {"latent": cat(latent), "true": cat(true), "episode": cat(episode),
            "judged": cat(judged) if judge is not None else None}


def evaluate_tokenizer(bundle: str, data: str, max_clips: int = 64, clip_len: int = 4, device: str = "auto",
                       seed: int = 0, batch_size: int = 16, grid: str | None = None) -> dict:
    """Reconstruction PSNR/SSIM of a bundle's tokenizer on clips of DATA."""
    from data_pipeline.shards import find_shards
    from genie.bundle import load_tokenizer
    from genie.models.tokenizer import float_to_frames
    from genie.world import resolve_device

    dev = resolve_device(device)
    tokenizer = load_tokenizer(bundle, dev)
    check_frame_size(find_shards(data), (tokenizer.config.height, tokenizer.config.width, 3), bundle)
    frames, _, _ = sample_clips(data, clip_len, max_clips, seed)
    values, recons = {"psnr": [], "ssim": []}, []
    with torch.no_grad():
        for s in range(0, len(frames), batch_size):
            real = torch.from_numpy(frames[s : s + batch_size]).to(dev)
            recon = float_to_frames(tokenizer(real)[0])
            values["psnr"].append(psnr(recon, real).clamp(max=100).flatten().cpu())
            values["ssim"].append(ssim(recon, real).flatten().cpu())
            recons.append(recon.cpu().numpy())
    if grid:
        from genie.pictures import frame_grid, save_png

        rows = []
        for original, rebuilt in zip(frames[:6], np.concatenate(recons)[:6]):
            rows += [original, rebuilt]
        save_png(Path(grid), frame_grid(rows))
    return {"bundle": str(bundle), "data": str(data), "clips": len(frames), "clip_len": clip_len,
            "tokenizer": {k: float(torch.cat(v).mean()) for k, v in values.items()}}


def evaluate(bundle: str, data: str, max_clips: int = 64, horizon: int = 30, prompt_frames: int = 1,
             steps: int | None = None, temperature: float | None = None, device: str = "auto", seed: int = 0,
             batch_size: int = 32, grid: str | None = None, max_probe_transitions: int = 20_000,
             judge: str | None = None, key_starts: int = 32, log=None, compile: bool = False,
             precision: str = "auto", guidance: float | None = None, mbr: float | None = None) -> dict:
    """Run every measurement above; returns a JSON-ready dict. Each stage is announced on stderr
    (or to `log`) as one line with the time so far, readable in a log file."""
    started = time.perf_counter()

    def progress(stage: str) -> None:
        line = f"eval: {stage} ({time.perf_counter() - started:.0f} s so far)"
        print(line, file=sys.stderr, flush=True) if log is None else log(line)

    from data_pipeline.actions import action_classes
    from data_pipeline.shards import read_shard_info
    from genie.bundle import read_bundle
    from genie.world import World

    components = read_bundle(bundle)[0].get("components", {})
    if set(components) == {"tokenizer"}:
        return evaluate_tokenizer(bundle, data, max_clips, device=device, seed=seed, grid=grid)
    clip_shards, hold_shards = split_shards(data)
    world = World.load(bundle, device=device, steps=steps, temperature=temperature, compile=compile,
                       precision=precision, guidance=guidance, mbr=mbr)
    check_frame_size(clip_shards + hold_shards, world.frame_shape, bundle)
    judge_model = None
    if judge is not None:
        from genie.eval.judge import Judge

        judge_model = Judge.load(judge, device=device)
        info = read_shard_info(clip_shards[0])
        judge_model.check(action_classes(info.action_names, str(info.path)).names, info.frame_shape, str(info.path))
        judge_model.check(judge_model.classes, world.frame_shape, f"{bundle}'s frames")
    if grid:
        evaluate_tokenizer(bundle, data, 6, clip_len=world.sample.tokenizer_context, device=device, grid=grid)
    frames, true_actions, _ = sample_clips(data, prompt_frames + horizon, max_clips, seed, shards=clip_shards)
    progress(f"{len(frames)} clips: tokenizer, next frames, hold-still gain and detail over {horizon} frames")
    result = {
        "bundle": str(bundle), "data": str(data), "clips": len(frames), "prompt_frames": prompt_frames,
        "horizon": horizon, "maskgit_steps": world.sample.steps, "temperature": world.sample.temperature,
        "guidance": world.sample.guidance, "mbr": world.sample.mbr,
        "precision": world.precision,
        **rollout_metrics(world, frames, prompt_frames, horizon, seed, batch_size),
    }
    if (true_actions >= 0).any():
        progress("latent-action probes" + (" and the judge" if judge_model is not None else ""))
        result.update(probe_metrics(world, clip_shards, max_probe_transitions, judge_model))
        if judge_model is not None:
            progress(f"key following from {key_starts} level starts")
            result["key_following"] = key_following(world, judge_model, data, clip_shards, hold_shards,
                                                    result["probe_horizontal"], key_starts, seed)
    return result


def rollout_metrics(world, frames: np.ndarray, prompt_frames: int, horizon: int, seed: int, batch_size: int) -> dict:
    """Tokenizer, next-frame PSNR, hold-still gain, detail kept, delta-t PSNR and LAM usage of clips
    uint8 [N, prompt_frames + horizon, H, W, 3]."""
    n = len(frames)
    rng = np.random.default_rng(seed)
    keys = ("tok_psnr", "tok_ssim", "inferred", "random", "hold", "detail_gen", "detail_real", "shift_gen", "shift_real")
    parts, latent = {k: [] for k in keys}, []
    for s in range(0, n, batch_size):
        clip = frames[s : s + batch_size]
        b = len(clip)
        real = torch.from_numpy(clip)
        recon = torch.from_numpy(world.reconstruct(clip))
        parts["tok_psnr"].append(psnr(recon, real).clamp(max=100).flatten())
        parts["tok_ssim"].append(ssim(recon, real).flatten())
        inferred = world.infer_actions(clip)  # [b, L-1]
        latent.append(inferred)
        random = rng.integers(0, world.num_actions, size=inferred.shape)
        seeds = [seed * 100_003 + s + i for i in range(b)]
        future = real[:, prompt_frames:]  # [b, horizon, H, W, 3]
        for name, acts, steps in (("inferred", inferred, horizon), ("random", random, min(horizon, DELTA_T))):
            start = torch.from_numpy(world.reset(clip[:, :prompt_frames], seed=seeds))  # the world's view
            gen = torch.from_numpy(np.stack([world.step(acts[:, prompt_frames - 1 + t]) for t in range(steps)], 1))
            parts[name].append(psnr(gen, future[:, :steps]).clamp(max=100))
            if name == "inferred":
                parts["hold"].append(psnr(start[:, None], future).clamp(max=100))
                parts["detail_gen"].append(detail(gen))
                parts["detail_real"].append(detail(future))
                t = min(horizon, HOLD_STILL_T)  # the view's shift into frames 1..t, generated and real
                parts["shift_gen"].append(view_shift(torch.cat((start[:, None], gen[:, :t]), 1).numpy()))
                parts["shift_real"].append(view_shift(clip[:, prompt_frames - 1 : prompt_frames + t]))
    curve = {k: torch.cat(v).mean(0) for k, v in parts.items() if k not in ("tok_psnr", "tok_ssim", "shift_gen", "shift_real")}
    # the baseline of PSNR papers: the last real prompt frame held still
    last = torch.from_numpy(frames[:, prompt_frames - 1 : prompt_frames])
    copy_curve = psnr(last, torch.from_numpy(frames[:, prompt_frames:])).clamp(max=100).mean(0).tolist()
    gain = (curve["inferred"] - curve["hold"])[:HOLD_STILL_T].tolist()
    delta = (curve["inferred"][: len(curve["random"])] - curve["random"]).tolist()
    latent = np.concatenate(latent)
    hist = np.bincount(latent.flatten(), minlength=world.num_actions) / latent.size
    nz = hist[hist > 0]
    return {
        "tokenizer": {"psnr": float(torch.cat(parts["tok_psnr"]).mean()),
                      "ssim": float(torch.cat(parts["tok_ssim"]).mean())},
        "next_frame_psnr": float(curve["inferred"][0]),
        "psnr_inferred": curve["inferred"].tolist(), "psnr_random": curve["random"].tolist(),
        "psnr_copy": copy_curve,
        "hold_still": {"psnr": curve["hold"][:HOLD_STILL_T].tolist(), "gain": gain, "min_gain": min(gain)},
        "detail": {str(t): float(curve["detail_gen"][t - 1] / curve["detail_real"][t - 1].clamp(min=1e-6))
                   for t in DETAIL_T if t <= horizon},
        "detail_real": {str(t): float(curve["detail_real"][t - 1]) for t in DETAIL_T if t <= horizon},
        "motion": motion_metrics(np.concatenate(parts["shift_gen"]), np.concatenate(parts["shift_real"])),
        "delta_psnr": delta,
        "delta_psnr_at_4": delta[3] if horizon >= 4 else None,
        "lam": {"usage": float((hist > 0).mean()), "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
                "histogram": hist.tolist()},
    }


def probe_metrics(world, shards: list[Path], max_transitions: int, judge=None) -> dict:
    """The lookup probes (raw actions, action classes, horizontal moves) over every transition of
    the shards' episodes, and with a judge its accuracy on the probe's held-out half."""
    from data_pipeline.actions import DIRECTION_NAMES, action_classes
    from data_pipeline.shards import read_shard_info

    info = read_shard_info(shards[0])
    classes = action_classes(info.action_names, str(info.path)) if info.action_names else None
    tr = episode_transitions(world, shards, max_transitions, judge)
    latent, true, ep = tr["latent"], tr["true"], tr["episode"]
    out = {"probe": lookup_probe(latent, true, ep, world.num_actions)}
    if classes is None:
        return out
    cls = classes.classify(true)
    horizontal = np.where(cls >= 0, classes.horizontal[np.clip(cls, 0, None)] + 1, -1)  # 0 left, 1 none, 2 right
    out["probe_classes"] = {**lookup_probe(latent, cls, ep, world.num_actions, classes.num_classes),
                            "classes": list(classes.names)}
    out["probe_horizontal"] = {**lookup_probe(latent, horizontal, ep, world.num_actions, 3),
                               "classes": [DIRECTION_NAMES[d] for d in (-1, 0, 1)]}
    if judge is not None:
        test = ~fit_half(ep) & (cls >= 0)
        judged_h = classes.horizontal[tr["judged"]] + 1
        acc = float((tr["judged"][test] == cls[test]).mean())
        acc_h = float((judged_h[test] == horizontal[test]).mean())
        out["judge"] = {"accuracy": acc, "accuracy_horizontal": acc_h, "transitions": int(test.sum()),
                        "history": judge.config.history, "trained": judge.info}
        for key, ref in (("probe_classes", acc), ("probe_horizontal", acc_h)):
            if "accuracy" in out[key]:
                out[key]["share_of_judge"] = out[key]["accuracy"] / max(ref, 1e-9)
    return out


def key_following(world, judge, data: str, clip_shards: list[Path], hold_shards: list[Path], probe_h: dict,
                  key_starts: int, seed: int) -> dict:
    """Hold each direction's latent action KEY_STEPS steps from level starts; the share of generated
    transitions the judge reads as that direction; beside it the real game's held-key footage."""
    from data_pipeline.actions import action_classes
    from data_pipeline.shards import episode_starts, read_episodes, read_shard_info

    info = read_shard_info(clip_shards[0])
    classes = action_classes(info.action_names, str(info.path))
    starts = episode_starts(data, key_starts, shards=clip_shards)
    latents = {"probe": direction_latents(probe_h)} if "counts" in probe_h else {}
    keymap = world.bundle_config.get("keymap") if hasattr(world, "bundle_config") else None
    if keymap and all(k in keymap for k in KEYMAP_KEYS.values()):
        latents["keymap"] = {d: int(keymap[k]) for d, k in KEYMAP_KEYS.items()}
    out = {"steps": KEY_STEPS, "starts": len(starts)}
    for name, chosen in latents.items():
        groups = list(chosen.items())
        prompts = np.concatenate([starts] * len(groups))
        acts = np.repeat([a for _, a in groups], len(starts))
        frames = [world.reset(prompts, seed=[seed * 1_000_003 + i for i in range(len(prompts))])]
        frames += [world.step(acts) for _ in range(KEY_STEPS)]
        read = classes.horizontal[judge.read(np.stack(frames, 1))]  # [G*P, KEY_STEPS] in -1, 0, 1
        shares = {d: float((read[g * len(starts):(g + 1) * len(starts)] == DIRECTIONS[d]).mean())
                  for g, (d, _) in enumerate(groups)}
        out[name] = {"latents": chosen, "share": shares, "mean": float(np.mean(list(shares.values())))}
    real = {d: [] for d in DIRECTIONS}
    for ep in read_episodes(None, shards=hold_shards):
        judge.check(action_classes(ep.info.action_names, str(ep.info.path)).names, ep.info.frame_shape, str(ep.info.path))
        held = ep.actions[:KEY_STEPS]
        if len(ep.frames) <= KEY_STEPS or held.min() < 0 or (held != held[0]).any():
            continue
        direction = int(classes.horizontal[classes.classify(held[:1])[0]])
        name = next(d for d, v in DIRECTIONS.items() if v == direction)
        read = classes.horizontal[judge.read(ep.frames[None, : KEY_STEPS + 1])[0]]
        real[name].append(float((read == direction).mean()))
    if all(real.values()):
        shares = {d: float(np.mean(v)) for d, v in real.items()}
        out["real"] = {"share": shares, "mean": float(np.mean(list(shares.values()))),
                       "episodes": {d: len(v) for d, v in real.items()}}
        for name in latents:
            out[name]["of_real"] = out[name]["mean"] / max(out["real"]["mean"], 1e-9)
    else:
        out["real"] = {"note": "no held-key footage of left, right and none in DATA: add it with "
                               "`genie record --env coinrun --policy hold ... --out DATA`"}
    return out


def motion_metrics(generated: np.ndarray, real: np.ndarray) -> dict:
    """The view's shifts (dx, dy) px, generated and real, float [..., 2] of the same transitions -> the
    mean px/frame of each, and the share of real moves the generated view follows and of real still
    transitions it keeps still (None where there were none)."""
    g, r = generated.reshape(-1, 2), real.reshape(-1, 2)
    g_len, r_len = np.linalg.norm(g, axis=-1), np.linalg.norm(r, axis=-1)
    moves = r_len >= MOVE_PX
    cos = (g * r).sum(-1) / np.maximum(g_len * r_len, 1e-6)
    followed = (cos >= FOLLOW_COS) & (g_len >= r_len / 2)
    return {"real_px": float(r_len.mean()), "generated_px": float(g_len.mean()),
            "moves": int(moves.sum()), "still": int((~moves).sum()),
            "followed": float(followed[moves].mean()) if moves.any() else None,
            "still_kept": float((g_len[~moves] < MOVE_PX).mean()) if (~moves).any() else None}


def format_motion(m: dict) -> str:
    """motion_metrics' dict -> "1.92 / 0.04 px a frame; real moves followed 0% of 312, still ..." """
    def share(v):
        return "-" if v is None else f"{v:.0%}"

    return (f"{m['real_px']:.2f} / {m['generated_px']:.2f} px a frame; real moves followed {share(m['followed'])} "
            f"of {m['moves']}, still frames kept still {share(m['still_kept'])} of {m['still']}")


def format_shares(s: dict) -> str:
    """{"left": 0.5, "right": ..., "none": ...} -> "50% / ... / ..." in DIRECTIONS order."""
    return " / ".join(f"{s[d]:.0%}" for d in DIRECTIONS)


def format_table(r: dict) -> str:
    if "horizon" not in r:  # a tokenizer bundle
        return (f"clips                  {r['clips']} of {r['clip_len']} frames\n"
                f"tokenizer PSNR / SSIM  {r['tokenizer']['psnr']:.2f} dB / {r['tokenizer']['ssim']:.3f}")
    hs, t16 = r["hold_still"], len(r["hold_still"]["gain"])
    rows = [
        ("clips", f"{r['clips']} (prompt {r['prompt_frames']} frame(s), horizon {r['horizon']}, "
                  f"{r['maskgit_steps']} MaskGIT steps, temperature {r['temperature']}"
                  + (f", guidance {r['guidance']:g}" if r.get('guidance', 1) != 1 else "")
                  + (f", mbr {r['mbr']:g}" if r.get('mbr', 0) else "") + ")"),
        ("tokenizer PSNR / SSIM", f"{r['tokenizer']['psnr']:.2f} dB / {r['tokenizer']['ssim']:.3f}"),
        ("next-frame PSNR (inferred actions)", f"{r['next_frame_psnr']:.2f} dB "
                                               f"(real prompt frame held still: {r['psnr_copy'][0]:.2f} dB)"),
        ("PSNR, t = 1.. (inferred actions)", " ".join(f"{v:.1f}" for v in r["psnr_inferred"][:t16])),
        (f"gain over holding still, t = 1..{t16}", " ".join(f"{g:+.1f}" for g in hs["gain"])),
        ("  minimum (>= 0: beats doing nothing)", f"{hs['min_gain']:+.2f} dB"),
    ]
    if r["detail"]:
        rows.append(("detail kept (generated / real), t = " + ", ".join(r["detail"]),
                     " / ".join(f"{v:.2f}" for v in r["detail"].values())))
    if "motion" in r:
        rows.append((f"view motion, t = 1..{t16} (real / generated)", format_motion(r["motion"])))
    if r["delta_psnr_at_4"] is not None:
        rows.append(("delta-t PSNR @ t=4", f"{r['delta_psnr_at_4']:+.2f} dB (inferred vs random actions: a world "
                     "that melts under all but one action wins it; read it beside the three rows above)"))
    rows.append(("LAM usage / perplexity", f"{r['lam']['usage']:.0%} of actions / {r['lam']['perplexity']:.2f}"))
    for key, what in (("probe", "raw actions"), ("probe_classes", "classes"), ("probe_horizontal", "horizontal")):
        p = r.get(key, {})
        if "accuracy" in p:
            label = f"action probe, {what}" + (f" ({len(p['classes'])})" if "classes" in p else "")
            share = f"; {p['share_of_judge']:.0%} of the judge's" if "share_of_judge" in p else ""
            rows.append((label, f"{p['accuracy']:.1%} vs majority baseline {p['majority_baseline']:.1%}{share}"))
    if "judge" in r:
        j = r["judge"]
        rows.append(("judge on the same transitions", f"{j['accuracy']:.1%} (classes), {j['accuracy_horizontal']:.1%} "
                     f"(horizontal); {j['transitions']:,} transitions"))
    if "key_following" in r:
        k = r["key_following"]
        for name, what in (("probe", "probe's latents"), ("keymap", "bundle's key map")):
            if name in k:
                of_real = f"; {k[name]['of_real']:.0%} of the real game's" if "of_real" in k[name] else ""
                rows.append((f"key following, {what} (left / right / none)",
                             f"{format_shares(k[name]['share'])} of {k['steps']} steps read as held "
                             f"(latents {', '.join(str(k[name]['latents'][d]) for d in DIRECTIONS)}){of_real}"))
        if "share" in k["real"]:
            rows.append(("key following, real game (held keys)", f"{format_shares(k['real']['share'])}"))
        else:
            rows.append(("key following, real game", k["real"]["note"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

def run_eval(bundle: str, data: str, json_out: str | None, **kwargs) -> dict:
    if json_out:
        _check_writable(Path(json_out))  # before minutes of evaluation, not after
    result = evaluate(bundle, data, **kwargs)
    print(format_table(result))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _check_writable(path: Path) -> None:
    """GenieError unless `path` can be written (its folder is created; no file is left behind)."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenieError(f"--json {path}: cannot create its folder ({err.strerror}); pass a writable path") from None
    if path.is_dir() or not os.access(path if path.exists() else path.parent, os.W_OK):
        raise GenieError(f"--json {path}: cannot write there; pass a writable file path")
