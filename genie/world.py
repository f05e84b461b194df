"""genie.World: the one runtime. Load a bundle, reset from a prompt, step with latent actions.

    world = World.load("worlds/coinrun")      # device="auto": CUDA if present, else CPU
    frames = world.reset(prompt, seed=0)      # uint8 [H,W,C] | [B,H,W,C] | [B,T0,H,W,C] -> [B,H,W,3]
    frames = world.step(actions)              # int [B] in 0..num_actions-1 -> uint8 [B,H,W,3]

B worlds step together in one batched forward. Each step samples the next frame's tokens with
MaskGIT (genie.sampler.MaskGITSampler: `steps` rounds, `temperature`, `guidance`, `mbr`) from a KV
cache of past frames (a sliding window of the dynamics model's training context), then decodes only
the new frame with the tokenizer's own decoder cache. The rollout lives in `world.state`
(RolloutState). `compile=True` runs those cached forwards through torch.compile (faster steps once
the first few have compiled them). `precision`: "auto" steps in bf16 (autocast; World.load also
holds the weights in bf16, while a World made of a training run's models leaves them alone) on CUDA
and in fp32 on a CPU; "bf16" asks for bf16 on a CPU too (faster where the CPU multiplies bf16
natively, AVX512-BF16 or AMX: `cpu_has_bf16()`; the logits then depend on the batch in their last
bits, as on CUDA); "fp32" keeps full precision everywhere (the reference the tests compare
against).
`cached=False` recomputes the window every round instead (the reference path): both give
identical logits while the rollout fits in the window; once it slides, the cache keeps each
frame's keys/values as computed when that frame was new (streaming), the reference recomputes the
window from scratch. Randomness is per world and counter-based: world b with seed s draws the same
numbers in any batch. Arrays in and out are numpy uint8 (torch tensors are accepted too).

Prompt images of any size and channel count go through one rule (data_pipeline.ingest.to_frame):
convert to RGB (gray replicated, alpha composited on black, 16-bit scaled), resize the short side
to the world's frame size, centre-crop.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genie.errors import GenieError
from genie.models.dynamics import Dynamics, DynamicsConfig
from genie.models.lam import LAMConfig, LatentActionModel
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer, float_to_frames
from genie.nn.maskgit import SEED_LIMIT
from genie.sampler import MaskGITSampler, RolloutState, SampleConfig

# Temperature of World.infer_actions' confidence: softmax over cosine similarities (see its docstring).
CONFIDENCE_TEMPERATURE = 0.1


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's AVX512-BF16 / AMX kernels)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise GenieError(f"--device {device}: not a device; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenieError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu or auto")
    return device


class World:
    """A playable world: tokenizer + latent-action model + dynamics, batched and KV-cached."""

    def __init__(
        self,
        tokenizer: VideoTokenizer,
        lam: LatentActionModel,
        dynamics: Dynamics,
        sample: SampleConfig | None = None,
        device: str | torch.device = "cpu",
        cached: bool = True,
        compile: bool = False,
        precision: str = "auto",
    ):
        if precision not in PRECISIONS:
            raise GenieError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.device = resolve_device(device)
        self.tokenizer = tokenizer.to(self.device).eval()
        self.lam = lam.to(self.device).eval()
        self.dynamics = dynamics.to(self.device).eval()
        codes = self.tokenizer.vq.codes().detach().float()  # for sample.mbr
        self.sampler = MaskGITSampler(self.dynamics, sample or SampleConfig(), cached, codes)
        self.num_actions = lam.config.num_actions
        self.frame_shape = (tokenizer.config.height, tokenizer.config.width, 3)
        bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self.precision = "bf16" if bf16 else "fp32"
        self.amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else None
        if compile and cached:  # the per-round forward and the frame decoder; eager everywhere else
            self.dynamics.transformer.compile_cached()
            self.tokenizer.decoder.compile_cached()
        self.state: RolloutState | None = None  # set by reset()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, device: str = "auto", steps: int | None = None,
             temperature: float | None = None, cached: bool = True, compile: bool = False,
             precision: str = "auto", guidance: float | None = None, mbr: float | None = None) -> World:
        """Load a world bundle (a folder or one .safetensors file) written by `genie export`."""
        from genie.bundle import component, read_bundle
        from genie.config import from_dict

        path = Path(path)
        config, weights = read_bundle(path)
        models = {}
        for name, cls_, cfg_cls in (("tokenizer", VideoTokenizer, TokenizerConfig), ("lam", LatentActionModel, LAMConfig),
                                    ("dynamics", Dynamics, DynamicsConfig)):
            cfg, state = component(config, weights, name, path)
            model = cls_(from_dict(cfg_cls, cfg, f"{path} [{name}]"))
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
                raise GenieError(f"{path}: its {name} weights do not fit its config.json ({len(problems)} "
                                 f"mismatch(es), first: {problems[0] if problems else err}); re-export the bundle "
                                 "from its run with `genie export`") from None
            models[name] = model
        sample = from_dict(SampleConfig, config.get("sample", {}), f"{path} [sample]")
        sample.steps = sample.steps if steps is None else steps
        sample.temperature = sample.temperature if temperature is None else temperature
        sample.guidance = sample.guidance if guidance is None else guidance
        sample.mbr = sample.mbr if mbr is None else mbr
        world = cls(models["tokenizer"], models["lam"], models["dynamics"], sample, device, cached, compile, precision)
        if world.precision == "bf16":  # its own models: weights held in bf16, no per-op weight casts (a CPU
            for model in models.values():  # step's matmuls ~2x faster)
                model.to(torch.bfloat16)
        world.bundle_config = config
        return world

    # ------------------------------------------------------------------ inputs
    def _frames(self, array, what: str, ndim: tuple[int, ...]) -> Tensor:
        """Any-size images -> uint8 [..., H, W, 3] on the device by the documented rule."""
        from data_pipeline.ingest import read_prompt, to_frame, to_rgb8

        if isinstance(array, (str, os.PathLike)):
            array = read_prompt(array)
        if isinstance(array, Tensor):
            array = array.detach().cpu().numpy()
        array = np.asarray(array)
        if array.ndim == 2:  # a single gray image
            array = array[..., None]
        if array.ndim not in ndim or array.shape[-1] not in (1, 3, 4):
            raise GenieError(
                f"{what}: expected images shaped {' or '.join(_shape_names[n] for n in ndim)} with 1, 3 or 4 channels, "
                f"got shape {array.shape}"
            )
        if array.size == 0:
            raise GenieError(f"{what}: empty array {array.shape}")
        h, w = self.frame_shape[:2]
        lead = array.shape[:-3]
        flat = array.reshape(-1, *array.shape[-3:])
        if flat.dtype == np.uint8 and flat.shape[1:] == (h, w, 3):
            out = flat
        else:
            if flat.dtype not in (np.uint8, np.uint16):
                raise GenieError(f"{what}: images must be uint8 or uint16, got {flat.dtype}")
            if h != w:
                raise GenieError(f"{what}: resizing prompts to a non-square world ({h}x{w}) is not supported")
            out = np.stack([to_frame(to_rgb8(img), h) for img in flat])
        out = np.ascontiguousarray(out.reshape(*lead, h, w, 3))
        return torch.from_numpy(out if out.flags.writeable else out.copy()).to(self.device)  # torch wants writable

    def _out(self, frames: Tensor) -> np.ndarray:
        return frames.cpu().numpy()

    # ------------------------------------------------------------------ rollout
    @torch.no_grad()
    def reset(self, prompt, seed: int | list[int] | None = None) -> np.ndarray:
        """Start B worlds from a prompt: uint8 image [H,W,C], batch [B,H,W,C], or frames [B,T0,H,W,C]
        (any size and channel count). `seed`: an int (world b gets seed+b), B ints, or None (random).
        Returns the worlds' current frames uint8 [B,H,W,3] (the tokenizer's view of the prompt)."""
        frames = self._frames(prompt, "prompt", (3, 4, 5))
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim == 4:
            frames = frames[:, None]
        frames = frames[:, -(self.sample.context - 1):] if frames.shape[1] >= self.sample.context else frames
        b, t0 = frames.shape[:2]
        seeds = self._seeds(seed, b)
        with self._autocast():
            tokens = self.tokenizer.encode(frames).indices  # [B,T0,h,w]
            if t0 > 1:
                actions = self._infer(frames)
            else:
                actions = torch.zeros(b, 0, dtype=torch.int64, device=self.device)
            none = torch.full((b, 1), self.dynamics.config.no_action, dtype=torch.int64, device=self.device)
            self.state = self.sampler.start(tokens.flatten(2), torch.cat((none, actions), dim=1), seeds)
            if self.cached:
                self.state.decoder_cache = self.tokenizer.decoder.new_cache(self.sample.tokenizer_context - 1)
                pixels = self.tokenizer.decode(tokens, self.state.decoder_cache, update_cache=True)
            else:
                pixels = self.tokenizer.decode(tokens[:, -(self.sample.tokenizer_context):])
        return self._out(float_to_frames(pixels[:, -1]))

    @torch.no_grad()
    def step(self, actions) -> np.ndarray:
        """Advance every world one frame: actions int [B] (0..num_actions-1) -> uint8 [B,H,W,3]."""
        return self._out(self.step_tensor(actions))

    @torch.no_grad()
    def step_tensor(self, actions) -> Tensor:
        """step() that returns uint8 frames [B,H,W,3] on the world's device (no host copy)."""
        if self.state is None:
            raise GenieError("step() before reset(): call world.reset(prompt) first")
        actions = self._actions(actions)
        gh, gw = self.tokenizer.config.grid
        with self._autocast():
            new = self.sampler.next_tokens(self.state, actions).view(-1, 1, gh, gw)
            if self.cached:
                pixels = self.tokenizer.decode(new, self.state.decoder_cache, update_cache=True)[:, -1]
            else:
                recent = self.state.tokens[:, -self.sample.tokenizer_context:]
                pixels = self.tokenizer.decode(recent.view(new.shape[0], -1, gh, gw))[:, -1]
        return float_to_frames(pixels)

    @property
    def sample(self) -> SampleConfig:
        """The sampler's settings (steps, temperature, context windows); takes effect at the next reset."""
        return self.sampler.config

    @sample.setter
    def sample(self, config: SampleConfig) -> None:
        self.sampler.check(config)
        self.sampler.config = config

    @property
    def cached(self) -> bool:
        """KV-cached steps (True) or the recomputing reference path; takes effect at the next reset."""
        return self.sampler.cached

    @cached.setter
    def cached(self, value: bool) -> None:
        self.sampler.cached = value

    @property
    def batch_size(self) -> int:
        """Worlds stepped together (0 before reset)."""
        return 0 if self.state is None else self.state.batch_size

    # ------------------------------------------------------------------ analysis
    @torch.no_grad()
    def infer_actions(self, video, return_confidence: bool = False):
        """Latent actions of a video: uint8 [B,T,H,W,C] (or [T,H,W,C]) -> int64 [B,T-1] (or [T-1]).

        The video is read in LAM windows of `sample.lam_context` frames overlapping by one frame,
        so transition t gets the same action in any video that holds the same window.
        With `return_confidence=True` returns (actions, confidence): confidence float32, same shape,
        in [1/num_actions, 1], the probability of the chosen action under a softmax over the LAM
        quantizer's cosine similarities to every action code, at temperature CONFIDENCE_TEMPERATURE
        (0.1). Why a softmax: it reads as a probability and is comparable across worlds; it is the
        posterior of an equal-weight Gaussian mixture on the unit sphere (|z - e|^2 = 2 - 2 cos), with
        the temperature as its variance. Why 0.1: cosines lie in [-1, 1], so at temperature 1 every
        action would get about 1/num_actions; at 0.1 a code 0.1 closer than the runner-up is e times
        as likely and a clear pick (0.3 closer) 20 times. Near 1/num_actions the LAM cannot tell the
        actions apart for that transition (e.g. nothing moved, or a collapsed codebook).
        """
        frames = self._frames(video, "video", (4, 5))
        single = frames.ndim == 4
        frames = frames[None] if single else frames
        if frames.shape[1] < 2:
            raise GenieError(f"video: needs at least 2 frames to infer actions, got {frames.shape[1]}")
        with self._autocast():
            actions, similarity = self._infer(frames, with_similarity=True)
        actions = actions.cpu().numpy()
        if not return_confidence:
            return actions[0] if single else actions
        probs = torch.softmax(similarity.float() / CONFIDENCE_TEMPERATURE, dim=-1)  # [B,T-1,A]
        confidence = probs.amax(dim=-1).cpu().numpy().astype(np.float32)  # argmax = the chosen action
        return (actions[0], confidence[0]) if single else (actions, confidence)

    def _infer(self, frames: Tensor, with_similarity: bool = False):
        """uint8 [B,T,H,W,3] on device -> int64 [B,T-1], in LAM windows overlapping by one frame;
        with_similarity: -> (actions, cosine similarities to every action code float [B,T-1,A])."""
        step = self.sample.lam_context - 1
        vq = [self.lam.encode(frames[:, s : s + step + 1]) for s in range(0, frames.shape[1] - 1, step)]
        actions = torch.cat([v.indices for v in vq], dim=1)
        return (actions, torch.cat([v.similarity for v in vq], dim=1)) if with_similarity else actions

    @torch.no_grad()
    def reconstruct(self, video) -> np.ndarray:
        """Tokenizer round trip of uint8 [B,T,H,W,C] (or [T,H,W,C]) -> same shape, uint8 RGB."""
        frames = self._frames(video, "video", (4, 5))
        single = frames.ndim == 4
        frames = frames[None] if single else frames
        window = self.sample.tokenizer_context
        with self._autocast():
            parts = []
            for s in range(0, frames.shape[1], window):  # the tokenizer's trained context
                recon, _ = self.tokenizer(frames[:, s : s + window])
                parts.append(float_to_frames(recon))
        out = self._out(torch.cat(parts, dim=1))
        return out[0] if single else out

    # ------------------------------------------------------------------ helpers
    def _actions(self, actions) -> Tensor:
        """int [B] actions -> int64 tensor on the device. Host arrays are range-checked before the
        copy; device tensors are trusted (checking them would stall the GPU every step)."""
        if isinstance(actions, Tensor) and actions.device.type != "cpu":
            a = actions.to(self.device, torch.int64)
        else:
            arr = actions.numpy() if isinstance(actions, Tensor) else np.asarray(actions)
            if arr.dtype.kind not in "iu":
                raise GenieError(f"actions must be integers, got {arr.dtype}")
            if arr.size and (arr.min() < 0 or arr.max() >= self.num_actions):
                bad = arr.max() if arr.max() >= self.num_actions else arr.min()
                raise GenieError(f"actions must be in 0..{self.num_actions - 1}, got {bad}")
            a = torch.as_tensor(arr, dtype=torch.int64).to(self.device, non_blocking=True)
        if a.ndim == 0:
            a = a[None]
        if a.shape != (self.batch_size,):
            raise GenieError(f"actions: expected {self.batch_size} actions (one per world), got shape {tuple(a.shape)}")
        return a

    def _seeds(self, seed, b: int) -> Tensor:
        if seed is None:
            seed = int(np.random.default_rng().integers(0, SEED_LIMIT - b))
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(b)]
        elif isinstance(seed, (list, tuple, np.ndarray, Tensor)):
            seeds = seed.reshape(-1).tolist() if isinstance(seed, (np.ndarray, Tensor)) else list(seed)
            if len(seeds) != b:
                raise GenieError(f"seed: expected {b} seeds (one per world), got {len(seeds)}")
        else:
            seeds = [seed]
        bad = [s for s in seeds if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or not 0 <= s < SEED_LIMIT]
        if bad:
            raise GenieError(f"seed: seeds must be integers from 0 to 2**31 - 1, got {bad[0]!r}")
        seeds = [int(s) for s in seeds]
        return torch.tensor(seeds, dtype=torch.int64, device=self.device)

    def _autocast(self):
        import contextlib

        return self.amp if self.amp is not None else contextlib.nullcontext()


_shape_names = {3: "[H,W,C]", 4: "[B,H,W,C]", 5: "[B,T,H,W,C]"}
