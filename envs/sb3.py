"""SB3VecEnv: Stable-Baselines3's VecEnv API over the native batched WorldVectorEnv.

    from stable_baselines3 import PPO
    from envs.sb3 import SB3VecEnv
    venv = SB3VecEnv.make(64, world="bundles/world", prompts="data/coinrun-train", reward_fn=...)
    model = PPO("CnnPolicy", venv, n_steps=128).learn(100_000)

SB3 does not use Gymnasium's vector API: its VecEnv resets a finished sub-env inside the step that
ended it. This adapter keeps all N worlds in one WorldVectorEnv, so every step is one batched
`World.step`, and translates the rest (see SB3VecEnv). Needs `stable-baselines3` (the dev extra).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.vector_env import WorldVectorEnv
from genie.errors import GenieError

with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
    warnings.simplefilter("ignore")  # SB3 imports gym (installed for CoinRun), which prints a notice
    try:
        from stable_baselines3.common.vec_env import VecEnv
    except ImportError as err:
        raise ImportError("envs.sb3 needs stable-baselines3: pip install stable-baselines3 "
                          "(it is in genie's dev extra)") from err


class SB3VecEnv(VecEnv):
    """A WorldVectorEnv (N worlds, one batched World.step per step) as a Stable-Baselines3 VecEnv.

    ## Spaces
    observation_space `Box(0, 255, (H, W, 3), uint8)` and action_space `Discrete(num_actions)`: one
    sub-env's, as SB3 expects (SB3's CnnPolicy transposes the images to channels-first itself).

    ## Step
    `step(actions int [N])` -> (obs uint8 [N,H,W,3], rewards float32 [N], dones bool [N], infos: N dicts).
    dones = terminated | truncated. When episodes end, SB3's convention: the returned obs are already the
    next episodes' first frames, `infos[i]["terminal_observation"]` is the last frame of the episode that
    ended, and `infos[i]["TimeLimit.truncated"]` is true when it was cut by the time limit rather than
    terminated (so PPO bootstraps its value). The restart is WorldVectorEnv.reset() without a seed: each
    sub-env continues its own generator, as a finished single env would.

    ## Restrictions (from WorldVectorEnv)
    All sub-envs start and end their episodes together: one World holds one batch. A done_fn that ends
    some sub-envs but not others raises GenieError. Attributes are shared: get_attr returns the vector
    env's attribute for every index; set_attr sets it for all and refuses a subset.

    ## Seeding
    `seed(s)` (what `PPO(..., seed=s)` calls) applies at the next reset: sub-env i gets seed s + i,
    i.e. the frames of `WorldEnv.reset(seed=s + i)`. `reset_infos[i]` holds prompt_index and world_seed.

    Wrap it in `stable_baselines3.common.vec_env.VecMonitor` for episode returns in SB3's logs.
    """

    def __init__(self, venv: WorldVectorEnv):
        if not isinstance(venv, WorldVectorEnv):
            raise GenieError(f"SB3VecEnv wraps an envs.WorldVectorEnv, got {type(venv).__name__}; "
                             "build one with SB3VecEnv.make(num_envs, world=..., ...)")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    @classmethod
    def make(cls, num_envs: int, **kwargs) -> SB3VecEnv:
        """SB3VecEnv(WorldVectorEnv(num_envs, **kwargs)): world, prompts, reward_fn, done_fn,
        max_episode_steps (default 1000, as genie/World-v0), device, steps, temperature."""
        kwargs.setdefault("max_episode_steps", 1000)
        return cls(WorldVectorEnv(num_envs, **kwargs))

    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else [int(s) for s in self._seeds]
        options = self._options[0] or None  # WorldVectorEnv resets all worlds: one set of options
        obs, info = self.venv.reset(seed=seeds, options=options)
        self._save_reset_infos(info)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self):
        if self._actions is None:
            raise GenieError("step_wait() without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, _ = self.venv.step(actions.astype(np.int64))
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": bool(tr and not te)} for te, tr in zip(terminated, truncated)]
        if dones.any():  # all sub-envs together (WorldVectorEnv refuses anything else)
            for i, info in enumerate(infos):
                info["terminal_observation"] = obs[i]
            obs, reset_info = self.venv.reset()
            self._save_reset_infos(reset_info)
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render() if self.venv.render_mode == "rgb_array" else None
        return list(frames) if frames is not None else [None] * self.num_envs

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if len(self._indices(indices)) != self.num_envs:
            raise GenieError(f"set_attr({attr_name!r}) on some sub-envs: the worlds share one WorldVectorEnv, "
                             "set it for all of them")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)  # once: the batch is one env
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))  # no gymnasium wrappers inside

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def _save_reset_infos(self, info: dict) -> None:
        self.reset_infos = [{"prompt_index": int(info["prompt_index"][i]), "world_seed": int(info["world_seed"][i])}
                            for i in range(self.num_envs)]
