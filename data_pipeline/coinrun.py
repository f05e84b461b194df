"""CoinRun footage from procgen with a sticky random policy.

Action convention (shared by every recorder): actions[t] is the action taken between frame t and
frame t+1, so it is what changed frame t+1; the last frame of an episode has actions = -1.
Episodes start at procgen's `first` flag and are cut after `max_steps` frames; after a cut the
env's remaining frames of that level are skipped, so every stored episode starts at a level start.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from genie.errors import GenieError

# procgen's 15 CoinRun actions (the order of `env.combos`); in CoinRun UP jumps, and the six
# letter keys (D, A, W, S, Q, E) are unused, so they act as noop.
ACTION_NAMES = [
    "LEFT+DOWN", "LEFT", "LEFT+UP", "DOWN", "NOOP", "UP", "RIGHT+DOWN", "RIGHT", "RIGHT+UP",
    "D", "A", "W", "S", "Q", "E",
]  # fmt: skip
# The 15 actions collapse to 6 movement classes: DOWN does nothing in CoinRun, nor do the letter
# keys, so they join NOOP; UP is a jump. `genie eval` reports its action probe on these too.
MOVEMENT_CLASSES = ["LEFT", "LEFT+JUMP", "JUMP", "NOOP", "RIGHT", "RIGHT+JUMP"]
MOVEMENT_OF_ACTION = np.array([0, 0, 1, 3, 3, 2, 4, 4, 5, 3, 3, 3, 3, 3, 3])
# default policy: mostly right / jump-right so random play makes progress through levels
DEFAULT_ACTION_PROBS = np.array(
    [0.03, 0.08, 0.08, 0.03, 0.06, 0.10, 0.04, 0.24, 0.28, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
)
HOLD_KEYS = [1, 7, 4]  # --policy hold: LEFT, RIGHT, NOOP
INSTALL_HINT = (
    "CoinRun needs procgen, which is not importable in this environment; run `make install` "
    "(it installs procgen-mirror, gym3 and gym with --no-deps), or record --env synthetic"
)


def import_procgen():
    """Import procgen quietly; returns the ProcgenGym3Env class or raises GenieError."""
    # gym prints a deprecation notice on import: silence it
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()):
                from procgen import ProcgenGym3Env
    except ImportError as err:
        raise GenieError(f"{INSTALL_HINT} ({err})") from None
    return ProcgenGym3Env


def check_procgen() -> None:
    """GenieError with install instructions if procgen cannot be imported."""
    import_procgen()


def make_coinrun_env(
    num: int, seed: int, start_level: int = 0, num_levels: int = 0, distribution_mode="hard"
):
    """A gym3 CoinRun env with `num` copies; observe() gives {'rgb': uint8 [num, 64, 64, 3]}.
    Levels are drawn from [start_level, start_level + num_levels) (num_levels 0: unlimited)."""
    env_cls = import_procgen()
    return env_cls(
        num=num, env_name="coinrun", distribution_mode=distribution_mode,
        start_level=start_level, num_levels=num_levels, rand_seed=seed % (1 << 31),
    )  # fmt: skip


def record_coinrun(
    out,
    prefix: str,
    episodes: int,
    max_steps: int,
    seed: int,
    start_level: int = 0,
    num_levels: int = 0,
    distribution_mode: str = "hard",
    sticky_mean: float = 4.0,
    action_probs=None,
    policy: str = "sticky",
    size: int = 64,
    frames_per_shard: int = 10_000,
    log=print,
    resume: bool = False,
    frame_skip: int = 1,
):
    """Record `episodes` CoinRun episodes (each <= max_steps frames) into `out/<prefix>-NNNNN.h5`
    with `policy` (policy.POLICIES: "sticky", a StickyRandomPolicy over `action_probs`, default
    DEFAULT_ACTION_PROBS; "uniform", every action equally likely; "hold", HOLD_KEYS). Episodes are
    spread evenly over up to 16 envs stepped together, so short episodes are not favoured.
    Frames are 64x64; another `size` is made by ingest.to_frame. `resume`: finish an interrupted set
    (the episodes already in its shards are played again and skipped). `frame_skip` K > 1: each
    action is played for K game frames and one frame in K is stored (at 64 px a step of CoinRun moves
    the view by well under a pixel); a level that ends mid-skip plays no-ops for the rest of it, so
    an episode starts within K-1 no-op frames of its level start. Returns RecordStats."""
    from data_pipeline.ingest import to_frame
    from data_pipeline.policy import make_policy, policy_source
    from data_pipeline.shards import RecordStats, ShardSetWriter, shard_logger

    rng = np.random.default_rng(seed)
    num = int(np.clip((256 << 20) // (max_steps * 64 * 64 * 3), 1, min(16, episodes)))
    env = make_coinrun_env(num, seed, start_level, num_levels, distribution_mode)
    names = [("+".join(c) or "NOOP") for c in env.combos] if hasattr(env, "combos") else ACTION_NAMES
    probs = DEFAULT_ACTION_PROBS if action_probs is None else action_probs
    if frame_skip < 1:
        raise GenieError(f"--frame-skip must be >= 1, got {frame_skip}")
    skip = f":skip{frame_skip}" if frame_skip > 1 else ""
    source = policy_source(f"coinrun:{distribution_mode}{skip}", policy)
    noop = np.full(num, names.index("NOOP") if "NOOP" in names else 4)
    policy = make_policy(policy, num, probs, sticky_mean, HOLD_KEYS, rng)
    quota = np.diff(np.linspace(0, episodes, num + 1).round().astype(int))  # episodes left per env
    buf = np.empty((num, max_steps, 64, 64, 3), dtype=np.uint8)  # episode in progress per env
    acts = np.full((num, max_steps), -1, dtype=np.int16)
    length = np.zeros(num, dtype=np.int64)
    recording = quota > 0  # every env starts at a level start
    envs = np.arange(num)
    stats = RecordStats()
    with ShardSetWriter(
        out, prefix, fps=15.0, source=source, action_names=names,
        frames_per_shard=frames_per_shard, resume=resume,
    ) as writer:  # fmt: skip
        writer.on_shard = shard_logger(log, episodes, writer.kept_episodes)
        _, ob, first = env.observe()
        while quota.sum() > 0:
            a = policy()
            rec = envs[recording]
            buf[rec, length[rec]] = ob["rgb"][rec]
            acts[rec, length[rec]] = a[rec]
            length[rec] += 1
            ended = np.zeros(num, dtype=bool)
            for _ in range(frame_skip):
                env.act(np.where(ended, noop, a))
                _, ob, first = env.observe()
                ended |= first
            first = ended
            for i in np.flatnonzero(recording & (first | (length == max_steps))):
                acts[i, length[i] - 1] = -1  # frame t+1 of the last action is not in this episode
                frames = buf[i, : length[i]]
                if size != 64:
                    frames = np.stack([to_frame(f, size) for f in frames])
                writer.add_episode(frames, acts[i, : length[i]].copy())
                quota[i] -= 1
                length[i] = 0
                policy.new_episode(i)
            # a cut episode skips to the next level start; finished envs stop recording
            recording = (quota > 0) & np.where(length == 0, first, recording)
    env.close()
    stats.add(writer)
    return stats
