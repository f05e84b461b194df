"""The action policies every recorder plays with, and how a recording names its policy.

sticky: random actions held a few frames (StickyRandomPolicy over the recorder's action weights);
uniform: the same with every action equally likely; hold: each episode holds one key (HoldPolicy).
"""

from __future__ import annotations

import numpy as np


class StickyRandomPolicy:
    """Random actions held for a random number of steps, vectorised over B envs.

    Each env picks an action from `probs` (float [A], sums to 1) and holds it for a geometric
    number of steps with mean `mean` (>= 1; mean 1 means a fresh action every step).
    Calling the policy returns the next actions int64 [B].
    """

    def __init__(self, num_envs: int, probs, mean: float, rng: np.random.Generator):
        self.probs = np.asarray(probs, dtype=np.float64) / np.sum(probs)
        self.mean, self.rng = max(float(mean), 1.0), rng
        self.actions = np.zeros(num_envs, dtype=np.int64)
        self.left = np.zeros(num_envs, dtype=np.int64)  # steps left to hold the current action

    def __call__(self) -> np.ndarray:
        new = self.left <= 0
        n = int(new.sum())
        if n:
            self.actions[new] = self.rng.choice(len(self.probs), size=n, p=self.probs)
            self.left[new] = self.rng.geometric(1.0 / self.mean, size=n)
        self.left -= 1
        return self.actions.copy()

    def new_episode(self, envs: np.ndarray) -> None:
        """Envs `envs` (int indices) start an episode: they draw a fresh action next call."""
        self.left[envs] = 0


class HoldPolicy:
    """Each episode holds one key from its first frame to its last; episodes take the keys in turn.

    `keys` (int action ids, e.g. CoinRun's LEFT, RIGHT, NOOP) are dealt round-robin over episodes
    in the order they start, so N episodes hold each key about N / len(keys) times. This is the
    real game's reference for key following: `genie eval` reads these episodes with its judge.
    """

    def __init__(self, num_envs: int, keys):
        self.keys = np.asarray(keys, dtype=np.int64)
        self.actions = np.zeros(num_envs, dtype=np.int64)
        self.dealt = 0
        self.new_episode(np.arange(num_envs))

    def __call__(self) -> np.ndarray:
        return self.actions.copy()

    def new_episode(self, envs: np.ndarray) -> None:
        envs = np.atleast_1d(envs)
        self.actions[envs] = self.keys[(self.dealt + np.arange(len(envs))) % len(self.keys)]
        self.dealt += len(envs)


# `genie record --policy`: sticky (random actions held ~sticky_mean frames, the recorder's own mix),
# uniform (the same, every action equally likely), hold (one key a whole episode; see HoldPolicy)
POLICIES = ("sticky", "uniform", "hold")
HOLD_SUFFIX = ":hold"  # appended to a shard's `source` when its episodes hold one key each


def make_policy(name: str, num_envs: int, probs, sticky_mean: float, hold_keys, rng: np.random.Generator):
    """The recorder's policy `name` (one of POLICIES) over B envs; probs: the sticky mix [A]."""
    if name == "hold":
        return HoldPolicy(num_envs, hold_keys)
    if name == "uniform":
        probs = np.ones(len(probs))
    elif name != "sticky":
        raise ValueError(f"unknown policy {name!r}")
    return StickyRandomPolicy(num_envs, probs, sticky_mean, rng)


def policy_source(source: str, policy: str) -> str:
    """A shard's `source` attribute: hold footage is tagged so evaluation can tell it apart."""
    return source + HOLD_SUFFIX if policy == "hold" else source if policy == "sticky" else f"{source}:{policy}"
