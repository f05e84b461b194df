"""WorldVectorEnv: N worlds as one Gymnasium vector env, stepped with one batched World.step.

    envs = gymnasium.make_vec("genie/World-v0", num_envs=64, world="bundles/world", prompts=...)
    obs, info = envs.reset(seed=0)                     # uint8 [N,H,W,3]
    obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.world_env import DoneFn, RewardFn, check_claim, claim_world, draw_start, load_prompts, load_world
from genie.errors import GenieError
from genie.world import World


class WorldVectorEnv(VectorEnv):
    """`num_envs` copies of WorldEnv (see its manual) sharing one batched genie.World.

    Every step is one `World.step(actions[N])`: one batched forward for all sub-envs. Sub-env i
    of `reset(seed=s)` gets the prompt, world seed and frames of `WorldEnv.reset(seed=s + i)`
    (the World's randomness is per batch member), and later seedless resets continue each
    sub-env's own generator, as a single env's would.

    Autoreset: `AutoresetMode.NEXT_STEP`. The step after an episode ends ignores the actions and
    returns the next episode's first frames (reward 0, not terminated, not truncated) and
    `info["prompt_index"]`, `info["world_seed"]`.

    Restriction: all sub-envs start and end their episodes together. genie.World keeps one KV
    cache for the whole batch and cannot restart one member alone, so an autoreset restarts
    every world. Episodes end together at `max_episode_steps` (1000 for genie/World-v0) or when
    `done_fn` is true for every sub-env at the same step; if `done_fn` ends some sub-envs but not
    others, step() raises GenieError (use vectorization_mode="sync" with a bundle path: N worlds,
    N forwards per step). `reset(options={"reset_mask": ...})` must select every sub-env.

    `reward_fn` and `done_fn` are WorldEnv's per-frame functions, called once per sub-env.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        world: str | Path | World,
        prompts=None,
        reward_fn: RewardFn | None = None,
        done_fn: DoneFn | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        device: str = "auto",
        steps: int | None = None,
        temperature: float | None = None,
    ):
        if num_envs < 1:
            raise GenieError(f"num_envs={num_envs}: expected at least 1")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise GenieError(f"render_mode={render_mode!r}: the vector env renders 'rgb_array' (or None); "
                             "use WorldEnv for a 'human' window")
        self.num_envs = num_envs
        self.world = load_world(world, device, steps, temperature)
        self.prompts = load_prompts(prompts, self.world.frame_shape)  # uint8 [P,H,W,3]
        self.reward_fn, self.done_fn = reward_fn, done_fn
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.single_observation_space = spaces.Box(0, 255, self.world.frame_shape, np.uint8)
        self.single_action_space = spaces.Discrete(self.world.num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator] | None = None  # one generator per sub-env
        self._obs: np.ndarray | None = None  # uint8 [N,H,W,3]
        self._elapsed = 0
        self._autoreset = False  # every episode ended last step: restart on this one

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        one = isinstance(seed, (int, np.integer))
        super().reset(seed=int(seed) if one else None)
        mask = None if options is None else options.get("reset_mask")
        if mask is not None and not np.all(mask):
            raise GenieError("reset_mask selects only some sub-envs, but WorldVectorEnv restarts all worlds together "
                             "(genie.World cannot reset one batch member); reset them all")
        if seed is not None:
            seeds = [int(seed) + i for i in range(self.num_envs)] if one else [int(s) for s in seed]
            if len(seeds) != self.num_envs:
                raise GenieError(f"seed: expected an int or {self.num_envs} ints (one per sub-env), got {len(seeds)}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        elif self._rngs is None:
            self._rngs = [seeding.np_random()[0] for _ in range(self.num_envs)]
        return self._restart()

    def step(self, actions):
        if self._obs is None:
            raise GenieError("step() before reset(): call envs.reset() first")
        actions = np.asarray(actions)
        if actions.dtype.kind not in "iu" or not self.action_space.contains(actions):
            raise GenieError(f"actions {actions!r} are not in {self.action_space}: pass {self.num_envs} ints "
                             f"in 0..{self.single_action_space.n - 1}")
        check_claim(self.world, self)
        n = self.num_envs
        if self._autoreset:
            obs, info = self._restart()
            return obs, np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), info
        prev, self._obs = self._obs, self.world.step(actions.astype(np.int64))  # [N,H,W,3]
        rewards = np.zeros(n)
        if self.reward_fn is not None:
            rewards = np.array([float(self.reward_fn(p, int(a), o)) for p, a, o in zip(prev, actions, self._obs)])
        terminated = np.zeros(n, bool)
        if self.done_fn is not None:
            terminated = np.array([bool(self.done_fn(o)) for o in self._obs])
            if terminated.any() and not terminated.all():
                raise GenieError(
                    f"done_fn ended sub-envs {np.flatnonzero(terminated).tolist()} but not the others at the same step; "
                    "WorldVectorEnv restarts all worlds together (genie.World cannot reset one batch member). "
                    "Use a done_fn that ends every sub-env together, or vectorization_mode='sync' with a bundle path"
                )
        self._elapsed += 1
        truncated = np.full(n, self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps)
        self._autoreset = bool(terminated.all() or truncated.all())
        return self._obs, rewards, terminated, truncated, {}

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array' to the env")
            return None
        if self._obs is None:
            raise GenieError("render() before reset(): call envs.reset() first")
        return self._obs.copy()  # uint8 [N,H,W,3]

    def _restart(self):
        """Start every sub-env's next episode from its own generator: one batched World.reset."""
        starts = [draw_start(rng, len(self.prompts)) for rng in self._rngs]
        index, world_seeds = (np.array(column) for column in zip(*starts))
        self._obs = self.world.reset(self.prompts[index], seed=world_seeds.tolist())
        claim_world(self.world, self)
        self._elapsed, self._autoreset = 0, False
        every = np.ones(self.num_envs, bool)
        return self._obs, {"prompt_index": index, "_prompt_index": every, "world_seed": world_seeds,
                           "_world_seed": every}
