"""`genie eval`: how good is a world? Measured on footage the model did not train on.

For N clips of `prompt + horizon` frames from DATA (pass held-out episodes):
  tokenizer      PSNR / SSIM of the tokenizer's round trip
  next-frame     PSNR of frame t generated from the real prompt with the actions the LAM infers
                 from the real clip, for t = 1..horizon (t = 1 is the next-frame PSNR), beside
                 the baseline of holding the last prompt frame still (psnr_copy)
  delta_psnr     Genie's controllability metric: PSNR(real, generated with inferred actions)
                 - PSNR(real, generated with random actions), per t; reported at t = 4
  lam            codebook usage (share of actions used, perplexity of their histogram)
  probe          when DATA has true actions: a lookup probe (each latent action -> the true
                 action it co-occurs with most) over every transition of DATA's episodes (up to
                 20,000), fit on half of the episodes, accuracy on the other half, beside the
                 majority-class baseline of that half; on CoinRun footage also on its 6 movement
                 classes (probe_movement)
Both rollouts of a clip use the same seed, so only the actions differ. A tokenizer-only bundle
gets the tokenizer row alone. --grid writes a PNG: originals above their reconstructions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from genie.errors import GenieError
from genie.metrics import psnr, ssim


def sample_clips(data: str, length: int, max_clips: int, seed: int = 0):
    """-> (frames uint8 [N,length,H,W,3], true actions int [N,length] (-1 unknown), episode id [N])."""
    from data_pipeline.dataset import ClipDataset
    from data_pipeline.shards import find_shards

    shards = find_shards(data)
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


def fit_action_map(latent: np.ndarray, true: np.ndarray, num_latent: int,
                   num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lookup probe's map: each latent action -> the true action it co-occurs with most.

    latent, true: int [M] paired transitions (true -1 = unknown, ignored; at least one known).
    Returns (mapping int64 [num_latent], counts int64 [num_latent, num_classes]); a latent action
    never seen with a known true action maps to the most frequent true action overall.
    num_classes defaults to the largest true action + 1.
    """
    keep = true >= 0
    latent, true = np.asarray(latent)[keep].astype(np.int64), np.asarray(true)[keep].astype(np.int64)
    classes = int(true.max()) + 1 if num_classes is None else int(num_classes)
    table = np.zeros((num_latent, classes), dtype=np.int64)
    np.add.at(table, (latent, true), 1)
    fallback = np.bincount(true, minlength=classes).argmax()
    return np.where(table.sum(1) > 0, table.argmax(1), fallback), table


def episode_transitions(world, data: str, max_transitions: int = 20_000):
    """Every transition of DATA's episodes (in shard order, up to max_transitions) with its latent
    action (genie.label.label_episode: World.infer_actions over the whole episode), its true action
    and episode id: -> (latent int [M], true int [M] (-1 unknown), episode int [M]). The probe uses
    these rather than the eval clips: a few hundred transitions make a noisy probe."""
    from genie.label import frame_size, label_episode, shard_episodes

    latent, true, episode, count = [], [], [], 0
    for eid, ep in enumerate(shard_episodes(Path(data), frame_size(world))):
        if count >= max_transitions:
            break
        if ep.length < 2:
            continue
        latent.append(label_episode(world, ep)[0])
        # actions[t] is the true action of transition t -> t+1
        true.append(ep.true_actions()[:-1] if ep.true_actions else np.full(ep.length - 1, -1, np.int64))
        episode.append(np.full(ep.length - 1, eid))
        count += ep.length - 1
    return np.concatenate(latent), np.concatenate(true), np.concatenate(episode)


def lookup_probe(latent: np.ndarray, true: np.ndarray, episodes: np.ndarray, num_latent: int) -> dict:
    """Fit latent -> most frequent true action on half the episodes, score it on the other half."""
    keep = true >= 0
    latent, true, episodes = latent[keep], true[keep], episodes[keep]
    unique = np.unique(episodes)
    if len(unique) < 2:
        return {"note": "needs footage of at least 2 episodes with true actions"}
    fit_eps = np.random.default_rng(0).permutation(unique)[: len(unique) // 2]
    fit = np.isin(episodes, fit_eps)
    classes = int(true.max()) + 1
    mapping, _ = fit_action_map(latent[fit], true[fit], num_latent, classes)
    test_true = true[~fit]
    return {
        "accuracy": float((mapping[latent[~fit]] == test_true).mean()),
        "majority_baseline": float(np.bincount(test_true, minlength=classes).max() / len(test_true)),
        "fit_transitions": int(fit.sum()),
        "test_transitions": int((~fit).sum()),
        "mapping": mapping.tolist(),
    }


def evaluate_tokenizer(bundle: str, data: str, max_clips: int = 64, clip_len: int = 4, device: str = "auto",
                       seed: int = 0, batch_size: int = 16, grid: str | None = None) -> dict:
    """Reconstruction PSNR/SSIM of a bundle's tokenizer on clips of DATA."""
    from genie.bundle import load_tokenizer
    from genie.tokenizer import float_to_frames
    from genie.world import resolve_device

    dev = resolve_device(device)
    tokenizer = load_tokenizer(bundle, dev)
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
        from genie.training.common import frame_grid, save_png

        rows = []
        for original, rebuilt in zip(frames[:6], np.concatenate(recons)[:6]):
            rows += [original, rebuilt]
        save_png(Path(grid), frame_grid(rows))
    return {"bundle": str(bundle), "data": str(data), "clips": len(frames), "clip_len": clip_len,
            "tokenizer": {k: float(torch.cat(v).mean()) for k, v in values.items()}}


def evaluate(bundle: str, data: str, max_clips: int = 64, horizon: int = 8, prompt_frames: int = 1,
             steps: int | None = None, temperature: float | None = None, device: str = "auto", seed: int = 0,
             batch_size: int = 32, grid: str | None = None, max_probe_transitions: int = 20_000) -> dict:
    """Run every measurement above; returns a JSON-ready dict."""
    from genie.bundle import read_bundle
    from genie.world import World

    components = read_bundle(bundle)[0].get("components", {})
    if set(components) == {"tokenizer"}:
        return evaluate_tokenizer(bundle, data, max_clips, device=device, seed=seed, grid=grid)
    world = World.load(bundle, device=device, steps=steps, temperature=temperature)
    if grid:
        evaluate_tokenizer(bundle, data, 6, clip_len=world.sample.tokenizer_context, device=device, grid=grid)
    frames, true_actions, episodes = sample_clips(data, prompt_frames + horizon, max_clips, seed)
    n = len(frames)
    rng = np.random.default_rng(seed)
    tok_psnr, tok_ssim, curves, latent = [], [], {"inferred": [], "random": []}, []
    for s in range(0, n, batch_size):
        clip = frames[s : s + batch_size]
        b = len(clip)
        real = torch.from_numpy(clip)
        recon = torch.from_numpy(world.reconstruct(clip))
        tok_psnr.append(psnr(recon, real).clamp(max=100).flatten())
        tok_ssim.append(ssim(recon, real).flatten())
        inferred = world.infer_actions(clip)  # [b, L-1]
        latent.append(inferred)
        random = rng.integers(0, world.num_actions, size=inferred.shape)
        seeds = [seed * 100_003 + s + i for i in range(b)]
        for name, acts in (("inferred", inferred), ("random", random)):
            world.reset(clip[:, :prompt_frames], seed=seeds)
            generated = [world.step(acts[:, prompt_frames - 1 + t]) for t in range(horizon)]
            gen = torch.from_numpy(np.stack(generated, axis=1))  # [b, horizon, H, W, 3]
            curves[name].append(psnr(gen, real[:, prompt_frames:]).clamp(max=100))
    # the baseline any world must beat: the last prompt frame held still
    last = torch.from_numpy(frames[:, prompt_frames - 1 : prompt_frames])
    copy_curve = psnr(last, torch.from_numpy(frames[:, prompt_frames:])).clamp(max=100).mean(0).tolist()
    inferred_curve = torch.cat(curves["inferred"]).mean(0).tolist()
    random_curve = torch.cat(curves["random"]).mean(0).tolist()
    delta = [a - b for a, b in zip(inferred_curve, random_curve)]
    latent = np.concatenate(latent)
    hist = np.bincount(latent.flatten(), minlength=world.num_actions) / latent.size
    nz = hist[hist > 0]
    result = {
        "bundle": str(bundle), "data": str(data), "clips": n, "prompt_frames": prompt_frames, "horizon": horizon,
        "maskgit_steps": world.sample.steps, "temperature": world.sample.temperature,
        "tokenizer": {"psnr": float(torch.cat(tok_psnr).mean()), "ssim": float(torch.cat(tok_ssim).mean())},
        "next_frame_psnr": inferred_curve[0],
        "psnr_inferred": inferred_curve, "psnr_random": random_curve, "psnr_copy": copy_curve,
        "delta_psnr": delta,
        "delta_psnr_at_4": delta[3] if horizon >= 4 else None,
        "lam": {"usage": float((hist > 0).mean()), "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
                "histogram": hist.tolist()},
    }
    if (true_actions >= 0).any():
        latent_all, true, ep = episode_transitions(world, data, max_probe_transitions)
        result["probe"] = lookup_probe(latent_all, true, ep, world.num_actions)
        if _is_coinrun(data):
            from data_pipeline.coinrun import MOVEMENT_CLASSES, MOVEMENT_OF_ACTION

            moves = np.where(true >= 0, MOVEMENT_OF_ACTION[np.clip(true, 0, None)], -1)
            result["probe_movement"] = {
                **lookup_probe(latent_all, moves, ep, world.num_actions),
                "classes": MOVEMENT_CLASSES,
            }
    return result


def _is_coinrun(data: str) -> bool:
    """True when every shard of DATA holds CoinRun footage with procgen's 15 named actions."""
    from data_pipeline.coinrun import ACTION_NAMES
    from data_pipeline.shards import find_shards, read_shard_info

    return all(read_shard_info(p).action_names == ACTION_NAMES for p in find_shards(data))


def format_table(r: dict) -> str:
    if "horizon" not in r:  # a tokenizer bundle
        return (f"clips                  {r['clips']} of {r['clip_len']} frames\n"
                f"tokenizer PSNR / SSIM  {r['tokenizer']['psnr']:.2f} dB / {r['tokenizer']['ssim']:.3f}")
    rows = [
        ("clips", f"{r['clips']} (prompt {r['prompt_frames']} frame(s), horizon {r['horizon']}, "
                  f"{r['maskgit_steps']} MaskGIT steps, temperature {r['temperature']})"),
        ("tokenizer PSNR / SSIM", f"{r['tokenizer']['psnr']:.2f} dB / {r['tokenizer']['ssim']:.3f}"),
        ("next-frame PSNR (inferred actions)", f"{r['next_frame_psnr']:.2f} dB"),
        ("  baseline: prompt frame held still", f"{r['psnr_copy'][0]:.2f} dB"),
        ("PSNR, t = 1.. (inferred actions)", " ".join(f"{v:.1f}" for v in r["psnr_inferred"])),
    ]
    if r["delta_psnr_at_4"] is not None:
        rows.append(("delta-t PSNR @ t=4", f"{r['delta_psnr_at_4']:+.2f} dB"))
    rows.append(("delta-t PSNR, t = 1..", " ".join(f"{d:+.2f}" for d in r["delta_psnr"])))
    rows.append(("LAM usage / perplexity", f"{r['lam']['usage']:.0%} of actions / {r['lam']['perplexity']:.2f}"))
    if "probe" in r and "accuracy" in r["probe"]:
        p = r["probe"]
        rows.append(("action probe (held-out episodes)",
                     f"{p['accuracy']:.1%} vs majority baseline {p['majority_baseline']:.1%}"))
    if "probe_movement" in r and "accuracy" in r["probe_movement"]:
        p = r["probe_movement"]
        rows.append((f"action probe, {len(p['classes'])} movement classes",
                     f"{p['accuracy']:.1%} vs majority baseline {p['majority_baseline']:.1%}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run_eval(bundle: str, data: str, json_out: str | None, **kwargs) -> dict:
    result = evaluate(bundle, data, **kwargs)
    print(format_table(result))
    if json_out:
        path = Path(json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result
