"""WorldEnv: a genie.World as a Gymnasium env, so an agent can train inside a learned world.

    env = gymnasium.make("genie/World-v0", world="bundles/world", prompts="data/coinrun-train")
    obs, info = env.reset(seed=0)                 # uint8 [H,W,3]
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

The env only picks prompts and seeds and scores frames; every frame comes from `World.reset` and
`World.step`. The helpers here (loading a world, building a prompt set, drawing a prompt and a
world seed from a generator, the pygame window) are shared with `envs.vector_env.WorldVectorEnv`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from einops import rearrange
from gymnasium import spaces

from data_pipeline.ingest import read_prompt
from data_pipeline.shards import episode_starts
from genie.errors import GenieError
from genie.world import World, resolve_device

RewardFn = Callable[[np.ndarray, int, np.ndarray], float]  # (prev_obs, action, obs) -> reward
DoneFn = Callable[[np.ndarray], bool]  # obs -> terminated
SEED_HIGH = 2**31 - 1  # world seeds are hashed as 31-bit values (genie.nn.maskgit.uniform)
RENDER_SCALE = 4  # "human" window: each world pixel becomes a 4x4 block

# The env that last reset each World: a World holds one batch of rollouts, so two envs driving the
# same World would silently interleave their episodes (e.g. make_vec(..., "sync", world=World)).
_claims: weakref.WeakKeyDictionary[World, weakref.ref] = weakref.WeakKeyDictionary()


class WorldEnv(gym.Env[np.ndarray, np.int64]):
    """A learned world model as an environment.

    ## Description
    Each episode starts from a prompt image; every step feeds one latent action to a
    `genie.World` and returns the frame it generates. The world is whatever the bundle learned
    from its footage: the env adds only the prompt choice, the seeds, and your reward and
    termination functions (a world model predicts frames, not rewards).

    ## Action Space
    `Discrete(world.num_actions)`: the world's latent actions, 0..num_actions-1. Their meaning is
    learned (`genie eval` probes it against the footage's true actions). Anything else raises
    `genie.GenieError`.

    ## Observation Space
    `Box(0, 255, (H, W, 3), uint8)`: the current RGB frame, (H, W, 3) = `world.frame_shape`.

    ## Rewards
    `reward_fn(prev_obs, action, obs)` if given, else 0.0 every step.

    ## Starting State
    A prompt drawn uniformly from the prompt set with `self.np_random`, and a world seed drawn
    from it too; the first observation is the tokenizer's view of the prompt. `reset(seed=s)`
    fixes both, so the same seed and actions give the same frames.

    ## Episode End
    Terminated when `done_fn(obs)` is true (never without one). Truncated after
    `max_episode_steps` steps: `gymnasium.make` applies a TimeLimit (1000 steps for
    genie/World-v0); an env built directly truncates itself when given `max_episode_steps`.

    ## Arguments
    - `world`: a bundle path (loaded with `World.load(path, device, steps, temperature)`) or a
      built `genie.World` (then leave device/steps/temperature unset). One env per World.
    - `prompts`: a list of images (uint8/uint16 arrays, any size, 1/3/4 channels) or image file
      paths; a dataset folder or `.h5` shard (the first frame of every episode); one image file;
      or None (a mid-gray frame). Images are converted by the World's rule
      (`data_pipeline.ingest.to_frame`: RGB, short side resized, centre crop).
    - `reward_fn`, `done_fn`: see Rewards and Episode End.
    - `render_mode`: "rgb_array" (render() returns the frame) or "human" (a pygame window, the
      frame scaled 4x with nearest-neighbour).
    - `device`, `steps`, `temperature`: passed to `World.load` (MaskGIT rounds, sampling temperature).

    `reset` returns `info = {"prompt_index": i, "world_seed": s}`; `step` returns `{}`.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(
        self,
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
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise GenieError(f"render_mode={render_mode!r}: expected one of {self.metadata['render_modes']} or None")
        self.world = load_world(world, device, steps, temperature)
        self.prompts = load_prompts(prompts, self.world.frame_shape)  # uint8 [P,H,W,3]
        self.reward_fn, self.done_fn = reward_fn, done_fn
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, self.world.frame_shape, np.uint8)
        self.action_space = spaces.Discrete(self.world.num_actions)
        self._obs: np.ndarray | None = None  # uint8 [H,W,3], the last frame
        self._elapsed = 0
        self._window = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        index, world_seed = draw_start(self.np_random, len(self.prompts))
        self._obs = self.world.reset(self.prompts[index], seed=world_seed)[0]
        claim_world(self.world, self)
        self._elapsed = 0
        if self.render_mode == "human":
            self.render()
        return self._obs, {"prompt_index": index, "world_seed": world_seed}

    def step(self, action):
        if self._obs is None:
            raise GenieError("step() before reset(): call env.reset() first")
        if not self.action_space.contains(action):
            raise GenieError(f"action {action!r} is not in {self.action_space}: "
                             f"pass an int in 0..{self.action_space.n - 1}")
        check_claim(self.world, self)
        prev, self._obs = self._obs, self.world.step(np.array([action], dtype=np.int64))[0]
        reward = 0.0 if self.reward_fn is None else float(self.reward_fn(prev, int(action), self._obs))
        terminated = False if self.done_fn is None else bool(self.done_fn(self._obs))
        self._elapsed += 1
        truncated = self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        return self._obs, reward, terminated, truncated, {}

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array' or 'human' to the env")
            return None
        if self._obs is None:
            raise GenieError("render() before reset(): call env.reset() first")
        if self.render_mode == "rgb_array":
            return self._obs.copy()
        if self._window is None:
            self._window = Window(self.world.frame_shape, self.metadata["render_fps"])
        self._window.show(self._obs)
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None


# ---------------------------------------------------------------------- shared with the vector env
def load_world(world: str | Path | World, device: str = "auto", steps: int | None = None,
               temperature: float | None = None) -> World:
    """A bundle path -> World.load(...); a World -> itself (device/steps/temperature must be unset)."""
    if isinstance(world, World):
        if steps is not None or temperature is not None:
            raise GenieError("steps/temperature apply when loading a bundle path; for a World instance "
                             "set world.sample.steps / world.sample.temperature instead")
        if str(device) != "auto" and resolve_device(device).type != world.device.type:
            raise GenieError(f"device={device!r}, but the World passed is on {world.device}; "
                             "pass a bundle path to load it on another device")
        return world
    if isinstance(world, (str, Path)):
        return World.load(world, device=device, steps=steps, temperature=temperature)
    raise GenieError(f"world: expected a bundle path or a genie.World, got {type(world).__name__}")


def load_prompts(prompts, frame_shape: tuple[int, int, int]) -> np.ndarray:
    """The prompt set as uint8 [P,H,W,3] at the world's frame size (see WorldEnv's Arguments)."""
    if prompts is None:
        return np.full((1, *frame_shape), 128, np.uint8)
    if isinstance(prompts, (str, Path)):
        path = Path(prompts)
        images = list(episode_starts(path)) if path.is_dir() or path.suffix == ".h5" else [read_prompt(path)]
        source = str(path)
    elif isinstance(prompts, np.ndarray) and prompts.ndim == 4:
        images, source = list(prompts), "prompts"
    elif isinstance(prompts, np.ndarray):
        images, source = [prompts], "prompts"
    else:
        images = [read_prompt(p) if isinstance(p, (str, Path)) else p for p in prompts]
        source = "prompts"
    if not images:
        raise GenieError(f"{source}: no prompt images (an empty list, or a dataset without episodes)")
    return np.stack([_to_world_frame(img, frame_shape, f"{source}[{i}]") for i, img in enumerate(images)])


def draw_start(rng: np.random.Generator, num_prompts: int) -> tuple[int, int]:
    """One episode start: (prompt index, world seed), in this order, from the env's generator."""
    return int(rng.integers(num_prompts)), int(rng.integers(SEED_HIGH))


def claim_world(world: World, env) -> None:
    """Record that `env` has just reset `world` (see check_claim)."""
    _claims[world] = weakref.ref(env)


def check_claim(world: World, env) -> None:
    """GenieError if another env has reset this World since `env` last did."""
    ref = _claims.get(world)
    if ref is None or ref() is not env:
        raise GenieError("this genie.World was reset by another env since this env's reset(): give each env "
                         "its own World (pass a bundle path), or batch them with "
                         "make_vec(..., vectorization_mode='vector_entry_point')")


def _to_world_frame(img, frame_shape: tuple[int, int, int], what: str) -> np.ndarray:
    """Any image -> uint8 [H,W,3] by the World's prompt rule, so World.reset sees it unchanged."""
    from data_pipeline.ingest import to_frame

    img = np.asarray(img)
    h, w = frame_shape[:2]
    if img.dtype == np.uint8 and img.shape == (h, w, 3):
        return img
    if img.dtype not in (np.uint8, np.uint16):
        raise GenieError(f"{what}: prompt images must be uint8 or uint16, got {img.dtype}")
    if h != w:
        raise GenieError(f"{what}: resizing prompts to a non-square world ({h}x{w}) is not supported; "
                         f"pass {h}x{w} RGB images")
    try:
        return to_frame(img, h)
    except ValueError as err:
        raise GenieError(f"{what}: {err}") from None


class Window:
    """A pygame window showing uint8 [H,W,3] frames scaled RENDER_SCALE x (nearest-neighbour)."""

    def __init__(self, frame_shape: tuple[int, int, int], fps: int, title: str = "genie world"):
        import os

        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pygame, self.fps = pygame, fps
        pygame.display.init()
        h, w = frame_shape[:2]
        self.size = (w * RENDER_SCALE, h * RENDER_SCALE)
        self.screen = pygame.display.set_mode(self.size)
        pygame.display.set_caption(title)
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray) -> None:
        surface = self.pygame.surfarray.make_surface(rearrange(frame, "h w c -> w h c"))
        self.screen.blit(self.pygame.transform.scale(surface, self.size), (0, 0))
        self.pygame.event.pump()
        self.pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        self.pygame.display.quit()
