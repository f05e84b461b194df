"""PPO trained inside a world, scored in the real game (CoinRun).

python benchmarks/ppo_in_world.py --world bundles/coinrun --prompts data/coinrun-train \
    --num-envs 64 --timesteps 200000                      # prints a markdown table
python benchmarks/ppo_in_world.py ... --append-results    # and adds the rows to RESULTS.md

1. Train: Stable-Baselines3 PPO ("CnnPolicy") on the world's frames through envs.sb3.SB3VecEnv (all
   --num-envs worlds step in one batched World.step). Episodes start from the first frames of
   --prompts' episodes and last --episode-steps steps. A world model predicts frames, not rewards,
   so the reward is a proxy: --reward progress (default) pays the scene's leftward scroll between
   two frames in pixels (CoinRun's camera follows the agent and every level's coin is at its far
   right), measured by phase correlation and clipped to +-4; --reward none pays 0 (a smoke test).
2. Map: each latent action -> the CoinRun action it co-occurs with most on footage with true actions
   (--map, default --prompts; genie.label.fit_map, the map of `genie label --map`).
3. Score: --eval-episodes real CoinRun episodes on levels the footage did not use (--start-level,
   --num-levels), the policy's latent actions played as their mapped CoinRun actions; mean return
   and success rate (the coin pays 10), beside two baselines on the same levels: uniformly random
   CoinRun actions, and uniformly random latent actions through the map. An episode cut at
   --eval-max-steps counts as a failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import report  # noqa: E402

from envs.sb3 import SB3VecEnv  # noqa: E402  (imports stable-baselines3 without gym's notice)
from genie.errors import GenieError  # noqa: E402
from genie.eval.metrics import view_shift  # noqa: E402
from genie.world import World  # noqa: E402


def progress_reward(prev: np.ndarray, action: int, obs: np.ndarray) -> float:
    """Pixels the scene scrolled left from prev to obs (uint8 [H,W,3]; genie eval's view shift): > 0 when
    the agent moves right, 0 where no one shift explains the change (a frame that melted)."""
    return float(np.clip(-view_shift(np.stack([prev, obs]))[0, 0], -4.0, 4.0))


def coinrun_names(env) -> list[str]:
    from data_pipeline.coinrun import ACTION_NAMES

    return [("+".join(c) or "NOOP") for c in env.combos] if hasattr(env, "combos") else ACTION_NAMES


def play_coinrun(policy, episodes: int, num_envs: int, seed: int, start_level: int, num_levels: int,
                 mode: str, max_steps: int, frame_skip: int = 1) -> np.ndarray:
    """Returns of `episodes` real CoinRun episodes (spread evenly over num_envs envs, so short episodes are not
    favoured) played by policy(frames uint8 [n,64,64,3]) -> CoinRun actions int [n], each action held for
    `frame_skip` game frames (as the world's footage was recorded; max_steps counts game frames). An episode
    cut at max_steps counts with the reward it had; that env then waits for its next level start."""
    from data_pipeline.coinrun import make_coinrun_env

    num_envs = min(num_envs, episodes)
    env = make_coinrun_env(num_envs, seed, start_level, num_levels, mode)
    quota = np.diff(np.linspace(0, episodes, num_envs + 1).round().astype(int))
    ret, length = np.zeros(num_envs), np.zeros(num_envs, np.int64)
    playing = quota > 0  # every env starts at a level start
    returns = []
    _, ob, first = env.observe()
    while quota.sum() > 0:
        action, done = np.asarray(policy(ob["rgb"]), dtype=np.int32), np.zeros(num_envs, bool)
        for _ in range(frame_skip):  # an env whose episode ended waits (its next level's reward is not counted)
            env.act(action)
            rew, ob, first = env.observe()
            ret += np.where(playing & ~done, rew, 0)
            length += playing & ~done
            done |= first
        first = done
        ended = playing & (first | (length >= max_steps))
        for i in np.flatnonzero(ended):
            returns.append(ret[i])
            quota[i] -= 1
        ret[ended], length[ended] = 0, 0
        # a cut episode waits for the next level start; envs that met their quota stop counting
        playing = (quota > 0) & np.where(ended & ~first, False, playing | first)
    env.close()
    return np.array(returns)


def footage_frame_skip(data: str) -> int:
    """The frame skip CoinRun footage was recorded with, from its shards' source ("coinrun:hard:skip4:..." -> 4)."""
    from data_pipeline.shards import find_shards, read_shard_info

    source = read_shard_info(find_shards(data)[0]).source
    skips = [int(part[4:]) for part in source.split(":") if part.startswith("skip") and part[4:].isdigit()]
    return skips[0] if skips else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", required=True, help="world bundle trained on CoinRun footage")
    parser.add_argument("--prompts", required=True, help="CoinRun shards: episode starts are the prompts")
    parser.add_argument("--map", help="CoinRun shards with true actions for the latent->real map (default --prompts)")
    parser.add_argument("--num-envs", type=int, default=16, help="worlds stepped together (default 16)")
    parser.add_argument("--timesteps", type=int, default=20_000, help="PPO environment steps in the world")
    parser.add_argument("--episode-steps", type=int, default=100, help="world episode length (default 100)")
    parser.add_argument("--reward", choices=["progress", "none"], default="progress")
    parser.add_argument("--n-steps", type=int, default=64, help="PPO rollout length per env (default 64)")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--eval-envs", type=int, default=16)
    parser.add_argument("--eval-max-steps", type=int, default=1000, help="cut real episodes here (CoinRun's own limit)")
    parser.add_argument("--start-level", type=int, default=100_000, help="first held-out CoinRun level")
    parser.add_argument("--num-levels", type=int, default=200)
    parser.add_argument("--mode", default="hard", choices=["easy", "hard"])
    parser.add_argument("--frame-skip", type=int, help="game frames per world step in real CoinRun "
                        "(default: what --map's footage was recorded with, e.g. coinrun:hard:skip4 -> 4)")
    parser.add_argument("--device", default="auto", help="world and policy device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write the trained policy here (.zip, stable-baselines3 format)")
    parser.add_argument("--label", help="a note for every row, e.g. 'tiny throwaway bundle'")
    parser.add_argument("--append-results", action="store_true", help="append rows to benchmarks/RESULTS.md")
    args = parser.parse_args()

    try:
        run(args)
    except GenieError as err:
        sys.exit(f"ppo_in_world.py: error: {err}")


def run(args: argparse.Namespace) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from data_pipeline.coinrun import make_coinrun_env
    from genie.label import fit_map

    world = World.load(args.world, device=args.device)
    note = f", {args.label}" if args.label else ""
    print(f"fitting the latent -> CoinRun action map on {args.map or args.prompts}")
    action_map = fit_map(world, args.map or args.prompts)
    print(action_map.describe())
    probe = make_coinrun_env(1, 0)
    names = coinrun_names(probe)
    probe.close()
    if action_map.names[: len(names)] != names:
        raise GenieError(f"--map {args.map or args.prompts}: its actions ({', '.join(action_map.names)}) are not "
                         "CoinRun's; pass footage from `genie record --env coinrun`")
    size = world.frame_shape[0]

    def to_world(frames: np.ndarray) -> np.ndarray:
        from data_pipeline.ingest import to_frame

        return frames if frames.shape[1:3] == (size, size) else np.stack([to_frame(f, size) for f in frames])

    # 1. train inside the world
    torch.manual_seed(args.seed)
    reward = progress_reward if args.reward == "progress" else None
    venv = VecMonitor(SB3VecEnv.make(args.num_envs, world=world, prompts=args.prompts, reward_fn=reward,
                                     max_episode_steps=args.episode_steps))
    n_steps = args.n_steps
    model = PPO("CnnPolicy", venv, n_steps=n_steps, batch_size=min(256, n_steps * args.num_envs), n_epochs=4,
                learning_rate=2.5e-4, ent_coef=0.01, gamma=0.99, seed=args.seed, device=world.device, verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    seconds = time.perf_counter() - start
    world_returns = [e["r"] for e in model.ep_info_buffer]
    if args.save:
        model.save(args.save)
    print(f"trained {model.num_timesteps:,} steps in {seconds:.0f} s")

    # 2-3. play real CoinRun
    rng = np.random.default_rng(args.seed)
    mapping = action_map.mapping
    policies = {
        "PPO policy (latent actions through the map)":
            lambda frames: mapping[model.predict(to_world(frames), deterministic=False)[0]],
        "random CoinRun actions": lambda frames: rng.integers(0, len(names), len(frames)),
        "random latent actions through the map": lambda frames: mapping[rng.integers(0, world.num_actions, len(frames))],
    }
    frame_skip = args.frame_skip or footage_frame_skip(args.map or args.prompts)
    eval_kwargs = dict(episodes=args.eval_episodes, num_envs=args.eval_envs, seed=args.seed + 1,
                       start_level=args.start_level, num_levels=args.num_levels, mode=args.mode,
                       max_steps=args.eval_max_steps, frame_skip=frame_skip)
    world_name = Path(args.world).name
    rows = [
        (f"PPO in world {world_name}{note}: {args.num_envs} envs, {model.num_timesteps:,} steps, reward {args.reward}, "
         f"{args.episode_steps}-step episodes ({world.device.type})",
         f"{seconds:.0f} s, {model.num_timesteps / seconds:,.1f} env steps/s; mean world episode return "
         f"{np.mean(world_returns) if world_returns else float('nan'):.2f}"),
        (f"latent -> CoinRun map on {args.map or args.prompts}{note}",
         f"agreement {action_map.agreement:.1%} (majority baseline {action_map.majority:.1%})"),
    ]
    for label, policy in policies.items():
        returns = play_coinrun(policy, **eval_kwargs)
        skip = f", each action held {frame_skip} frames" if frame_skip > 1 else ""
        rows.append((f"real CoinRun {args.mode}, {len(returns)} episodes on levels {args.start_level}+"
                     f"{args.num_levels}, <= {args.eval_max_steps} steps{skip}: {label}{note}",
                     f"mean return {returns.mean():.2f}, success {np.mean(returns > 0):.0%}"))
        print(f"{label}: mean return {returns.mean():.2f}", flush=True)
    report("ppo_in_world.py", rows, args.append_results)


if __name__ == "__main__":
    main()
