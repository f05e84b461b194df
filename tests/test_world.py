"""genie.World and the models behind it: action alignment, caching, batching, bundles, errors."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import Tensor

from data_pipeline.dataset import ClipDataset
from data_pipeline.shards import find_shards
from genie.cli import main
from genie.errors import GenieError
from genie.models.dynamics import Dynamics, DynamicsConfig
from genie.models.lam import LAMConfig, LatentActionModel
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer, float_to_frames
from genie.nn.maskgit import maskgit_sample, uniform, unmask_schedule
from genie.world import SampleConfig, World

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.wandb=false", "train.progress_bar=false"]
# World tests that also run on a GPU where one is present (bf16 autocast there); CI has none
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def tiny_world(cached=True, context=6, device="cpu", guidance=1.0) -> World:
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(patch_size=8, dim=32, encoder_depth=1, decoder_depth=1, heads=2,
                                         codebook_size=64, code_dim=8))
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, num_actions=4))
    dyn = Dynamics(DynamicsConfig(vocab_size=64, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=2, heads=2,
                                  action_dropout=0.0 if guidance == 1 else 0.1))
    sample = SampleConfig(steps=4, context=context, tokenizer_context=3, lam_context=4, guidance=guidance)
    return World(tok, lam, dyn, sample, device=device, cached=cached)


def prompt(b=3, t=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8)


def test_action_at_t_changes_frame_t_plus_1_and_nothing_before():
    torch.manual_seed(0)
    dyn = Dynamics(DynamicsConfig(vocab_size=32, grid_h=4, grid_w=4, num_actions=4, dim=32, depth=2, heads=4)).eval()
    tokens = torch.randint(0, 32, (2, 5, 4, 4))
    actions = torch.randint(0, 4, (2, 4))
    changed = actions.clone()
    changed[:, 2] = (changed[:, 2] + 1) % 4  # a_2 conditions frame 3
    a, b = dyn(tokens, actions), dyn(tokens, changed)
    assert torch.equal(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_context_noise_randomises_visible_tokens_only_and_is_off_by_default():
    tokens = torch.randint(0, 32, (32, 6, 64))
    clean = Dynamics(DynamicsConfig(vocab_size=32, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=1, heads=4))
    inputs, mask = clean.training_inputs(tokens, torch.Generator().manual_seed(0))
    assert torch.equal(inputs[~mask], tokens[~mask]) and (inputs[mask] == 32).all() and not mask[:, 0].any()
    noisy = Dynamics(DynamicsConfig(vocab_size=32, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=1, heads=4,
                                    context_noise=0.5))
    inputs, mask = noisy.training_inputs(tokens, torch.Generator().manual_seed(0))
    assert (inputs[mask] == 32).all()  # masked tokens stay masked (their targets are the clean tokens)
    changed = (inputs != tokens)[~mask].float().mean()
    assert 0.45 < changed < 0.52  # half the visible tokens are redrawn (1 in 32 onto its own code): 0.484



def test_clean_history_keeps_the_frames_before_a_cut_whole_in_training_only():
    tokens = torch.randint(0, 32, (256, 6, 64))
    dyn = Dynamics(DynamicsConfig(vocab_size=32, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=1, heads=4,
                                  clean_history=1.0))
    _, mask = dyn.training_inputs(tokens, torch.Generator().manual_seed(0))
    masked_frames = mask.any(-1)  # [B, T]
    cut = masked_frames.int().argmax(1)  # each clip's first masked frame
    assert (cut >= 1).all() and set(cut.tolist()) == {1, 2, 3, 4, 5}  # cuts anywhere in 1..T-1
    before = torch.arange(6)[None] < cut[:, None]
    assert not masked_frames[before].any() and masked_frames[~before].all()  # whole past, masked from the cut on
    dyn.eval()  # validation masks every frame 1..T-1, as without it
    _, mask = dyn.training_inputs(tokens, torch.Generator().manual_seed(0))
    assert mask[:, 1:].any(-1).all()
    half = Dynamics(DynamicsConfig(vocab_size=32, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=1, heads=4,
                                   clean_history=0.5))
    _, mask = half.training_inputs(tokens, torch.Generator().manual_seed(0))
    assert 0.3 < (~mask[:, 1:].any(-1)).any(-1).float().mean() < 0.6  # about half the clips (those cut after 1) keep frames whole
    with pytest.raises(ValueError, match="clean_history must be from 0 to 1"):
        DynamicsConfig(clean_history=1.5)

def test_own_context_shows_a_frame_the_model_drew_from_the_real_past_in_training_only():
    torch.manual_seed(0)
    dyn = Dynamics(DynamicsConfig(vocab_size=32, grid_h=4, grid_w=4, num_actions=4, dim=32, depth=1, heads=4,
                                  own_context=1.0))
    tokens, actions = torch.randint(0, 32, (64, 6, 4, 4)), torch.randint(0, 4, (64, 5))
    flat = tokens.flatten(2)
    inputs, mask = dyn.training_inputs(flat, torch.Generator().manual_seed(0))
    seen = []
    dyn.register_forward_pre_hook(lambda module, args: seen.append(args[0].flatten(2).clone()))
    own, own_mask = dyn.own_frame(flat, inputs, mask, actions, torch.Generator().manual_seed(1))
    query = seen[0]  # the extra forward: a real past, then masked from each clip's cut on
    cut = (query == 32).any(-1).int().argmax(1)
    assert set(cut.tolist()) == {1, 2, 3, 4} and all((query[i, :k] == flat[i, :k]).all() for i, k in enumerate(cut))
    with torch.no_grad():
        drawn = dyn(query.view(64, 6, 4, 4), actions).argmax(-1)
    for i, k in enumerate(cut.tolist()):
        assert torch.equal(own[i, :k], flat[i, :k]) and torch.equal(own[i, k], drawn[i, k])  # real past, its own frame k
        assert not own_mask[i, : k + 1].any()  # no loss on the past or on the drawn frame
        assert torch.equal(own[i, k + 1 :], inputs[i, k + 1 :]) and torch.equal(own_mask[i, k + 1 :], mask[i, k + 1 :])
    assert (own != flat).any()  # an untrained model draws other codes than the real ones
    seen.clear()
    loss, _ = dyn.loss(tokens, actions)
    loss.backward()  # the extra forward is outside the graph; the loss still trains the model
    assert len(seen) == 2 and dyn.head.weight.grad is not None
    seen.clear()
    dyn.eval()
    dyn.loss(tokens, actions)
    assert len(seen) == 1  # validation: no extra forward
    assert Dynamics(DynamicsConfig(vocab_size=32, grid_h=4, grid_w=4, num_actions=4, dim=32, depth=1,
                                   heads=4)).config.own_context == 0  # off by default
    with pytest.raises(ValueError, match="own_context must be from 0 to 1"):
        DynamicsConfig(own_context=-0.1)


def test_action_dropout_hides_a_share_of_the_actions_in_training_only():
    dyn = Dynamics(DynamicsConfig(vocab_size=32, grid_h=4, grid_w=4, num_actions=4, dim=32, depth=1, heads=4,
                                  action_dropout=0.25))
    seen = []
    dyn.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    tokens, actions = torch.randint(0, 32, (64, 5, 4, 4)), torch.randint(0, 4, (64, 4))
    dyn.loss(tokens, actions, torch.Generator().manual_seed(0))
    dropped = seen[-1] == 4  # the "no action" id
    assert torch.equal(seen[-1][~dropped], actions[~dropped]) and 0.2 < dropped.float().mean() < 0.3
    dyn.eval().loss(tokens, actions, torch.Generator().manual_seed(0))
    assert torch.equal(seen[-1], actions)  # validation sees every action
    with pytest.raises(ValueError, match="action_dropout"):
        DynamicsConfig(action_dropout=1.0)


def test_guided_logits_steer_the_action_effect_by_the_guidance_scale():
    """uncond + g * (cond - uncond), with "no action" in place of the frame's action only."""
    world = tiny_world(cached=False, context=8, guidance=2.5)
    world.reset(prompt(b=2, t=3), seed=0)
    state, dyn, n = world.state, world.dynamics, world.state.tokens.shape[-1]
    probe = torch.randint(0, 65, (2, n))  # some tokens masked (64)
    action = torch.tensor([[1], [3]])
    with torch.no_grad():
        guided = world.sampler.round_logits(state, probe, action, 0)
        seq = torch.cat((state.tokens, probe[:, None]), 1)
        cond = dyn.step_logits(seq, torch.cat((state.actions_in, action), 1))[:, -1]
        uncond = dyn.step_logits(seq, torch.cat((state.actions_in, torch.full_like(action, 4)), 1))[:, -1]
    torch.testing.assert_close(guided, uncond + 2.5 * (cond - uncond))
    assert not torch.allclose(cond, uncond)


def test_guided_worlds_cache_like_the_reference_and_batch_like_singles():
    cached, uncached = tiny_world(cached=True, context=8, guidance=3.0), tiny_world(cached=False, context=8, guidance=3.0)
    p = prompt()
    cached.reset(p, seed=[1, 2, 3]), uncached.reset(p, seed=[1, 2, 3])
    steps = [np.array([t % 4, (t + 1) % 4, 3]) for t in range(6)]
    frames = [cached.step(a) for a in steps]
    assert all(np.array_equal(f, uncached.step(a)) for f, a in zip(frames, steps))
    single = tiny_world(cached=True, context=8, guidance=3.0)
    single.reset(p[1:2], seed=2)
    assert all(np.array_equal(single.step(a[1:2])[0], f[1]) for f, a in zip(frames, steps))
    plain = tiny_world(cached=True, context=8, guidance=1.0)
    plain.dynamics.load_state_dict(cached.dynamics.state_dict())
    plain.reset(p, seed=[1, 2, 3])
    assert not all(np.array_equal(plain.step(a), f) for f, a in zip(frames, steps))  # guidance changes the frames


def test_a_bf16_world_of_a_training_runs_models_leaves_their_weights_alone():
    world = tiny_world()
    bf16 = World(world.tokenizer, world.lam, world.dynamics, world.sample, precision="bf16")
    assert bf16.precision == "bf16"
    assert all(p.dtype == torch.float32 for m in (world.tokenizer, world.lam, world.dynamics) for p in m.parameters())
    bf16.reset(prompt(b=1), seed=0)
    assert bf16.step(np.array([1])).shape == (1, 64, 64, 3)


def test_guidance_needs_a_world_trained_with_action_dropout():
    world = tiny_world()
    with pytest.raises(GenieError, match="action dropout"):
        world.sample = SampleConfig(steps=4, context=6, tokenizer_context=3, lam_context=4, guidance=2.0)
    with pytest.raises(GenieError, match="guidance must be a number >= 0"):
        tiny_world(guidance=2.0).sample = SampleConfig(guidance=-1.0)


def test_lam_action_depends_on_the_frames_of_its_transition_only():
    torch.manual_seed(0)
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=2, decoder_depth=1)).eval()
    video = torch.randint(0, 256, (1, 5, 64, 64, 3), dtype=torch.uint8)
    later = video.clone()
    later[:, 3:] = 255 - later[:, 3:]
    with torch.no_grad():
        a, b = lam.encode(video), lam.encode(later)
    # transitions 0->1 and 1->2 do not see frame 3
    torch.testing.assert_close(a.quantized[:, :2], b.quantized[:, :2])


def cached_and_full_logits(device: str, spatial_rope: bool = False) -> tuple[Tensor, Tensor]:
    """Dynamics logits of a 6-frame clip stepped through the KV cache frame by frame, and computed
    over the whole clip at once (float32 copies)."""
    torch.manual_seed(0)
    dyn = Dynamics(DynamicsConfig(vocab_size=32, grid_h=4, grid_w=4, num_actions=4, dim=32, depth=2, heads=4,
                                  spatial_rope=spatial_rope))
    dyn = dyn.eval().to(device)
    tokens = torch.randint(0, 32, (2, 6, 16), device=device)
    actions_in = torch.cat((torch.full((2, 1), 4), torch.randint(0, 4, (2, 5))), dim=1).to(device)
    with torch.no_grad():
        full = dyn.step_logits(tokens, actions_in)
        cache = dyn.transformer.new_cache(window=16)
        parts = [dyn.step_logits(tokens[:, :2], actions_in[:, :2], cache, commit=True)]
        for t in range(2, 6):
            masked = tokens[:, t : t + 1].clone()
            masked[:, :, ::2] = 32  # probing with masked tokens must leave the cache alone
            dyn.step_logits(masked, actions_in[:, t : t + 1], cache)
            parts.append(dyn.step_logits(tokens[:, t : t + 1], actions_in[:, t : t + 1], cache, commit=True))
    return torch.cat(parts, dim=1).float(), full.float()


@pytest.mark.parametrize("spatial_rope", [False, True])
@pytest.mark.parametrize("device", DEVICES)
def test_cached_step_gives_the_same_logits_as_recomputing(device, spatial_rope):
    cached, full = cached_and_full_logits(device, spatial_rope)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cached_step_logits_agree_under_bf16_autocast():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        cached, full = cached_and_full_logits("cuda")
    assert (cached - full).abs().max() < 0.1 * full.std()  # bf16 keeps ~3 significant digits
    assert (cached.argmax(-1) == full.argmax(-1)).float().mean() > 0.95


def test_cached_and_uncached_worlds_agree_within_the_context_window():
    """Bit for bit in fp32. Under bf16 (CUDA) the two paths round differently, so their logits agree
    to bf16 precision (next test) and sampled rollouts may part after a few steps."""
    cached, uncached = tiny_world(cached=True, context=8), tiny_world(cached=False, context=8)
    p = prompt()
    assert np.array_equal(cached.reset(p, seed=1), uncached.reset(p, seed=1))
    for t in range(6):  # 2 prompt frames + 6 steps = the 8-frame window
        a = np.array([t % 4, (t + 1) % 4, 3])
        assert np.array_equal(cached.step(a), uncached.step(a)), f"step {t}"


@pytest.mark.parametrize("device", DEVICES)
def test_a_batch_of_worlds_equals_single_runs_with_the_same_seeds(device):
    world, single = tiny_world(device=device), tiny_world(device=device)
    p = prompt()
    world.reset(p, seed=[5, 6, 7])
    actions = np.array([[0, 1, 2], [3, 3, 0], [1, 2, 3], [2, 0, 1], [0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
    batch = [world.step(a) for a in actions]  # 8 steps: the window (6) slides too
    for b, seed in enumerate([5, 6, 7]):
        single.reset(p[b : b + 1], seed=seed)
        for t, a in enumerate(actions):
            assert np.array_equal(single.step(a[b : b + 1])[0], batch[t][b]), (b, t)


@pytest.mark.slow
def test_compiled_world_steps_like_the_eager_one():
    """World(compile=True) puts the cached forwards under torch.compile: same logits within float tolerance."""
    eager, compiled = tiny_world(), tiny_world()
    compiled.dynamics.transformer.compile_cached()
    compiled.tokenizer.decoder.compile_cached()
    for world in (eager, compiled):
        world.reset(prompt(b=2, t=2), seed=0)
    for t in range(8):  # past the 6-frame window: the ring wraps under the compiled code too
        actions = np.array([t % 4, (t + 1) % 4])
        frames = [w.step(actions).astype(int) for w in (eager, compiled)]
        same = (eager.state.tokens[:, -1] == compiled.state.tokens[:, -1]).float().mean()
        assert same > 0.98  # the same draws pick the same tokens but where float noise ties a choice
        assert np.abs(frames[0] - frames[1]).mean() < 2


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_rollout_other_seed_other_rollout(device):
    world = tiny_world(device=device)
    p = prompt(b=1)
    runs = []
    for seed in (3, 3, 4):
        world.reset(p, seed=seed)
        runs.append(np.stack([world.step(np.array([t % 4])) for t in range(4)]))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_maskgit_unmasks_every_token_on_a_cosine_schedule():
    assert unmask_schedule(256, 25)[-1] == 0 and unmask_schedule(256, 25)[0] == 255
    counts = unmask_schedule(64, 8)
    assert all(a > b for a, b in zip(counts, counts[1:]))
    seen = []

    def logits_fn(tokens, round_):
        seen.append(int((tokens == 10).sum()))
        return torch.randn(2, 16, 10)

    seeds = torch.tensor([0, 1])
    out = maskgit_sample(logits_fn, 2, 16, 10, 4, 1.0, lambda i: uniform(seeds, i, 16))
    assert out.shape == (2, 16) and int(out.max()) < 10
    assert seen[0] == 32 and seen == sorted(seen, reverse=True)



def test_mbr_picks_the_code_nearest_the_expected_code_vector():
    # codes 0 and 1 are orthogonal, code 2 lies between them: when 0 and 1 split the mass the
    # most likely code is one of them, the minimum-Bayes-risk pick the code between
    codes = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]), dim=-1)
    probs = torch.tensor([[0.41, 0.39, 0.2, 0.0], [0.0, 0.0, 0.0, 1.0]]).clamp_min(1e-9)
    logits = probs.log()[None].expand(2, 2, 4)

    def pick(steps, temperature=0.0, mbr=1.0):
        return maskgit_sample(lambda tokens, i: logits, 2, 2, 4, steps, temperature, lambda i: torch.rand(2, 2),
                              codes=codes, mbr=mbr)

    assert pick(1, mbr=0.0).tolist() == [[0, 3], [0, 3]]  # the most likely code
    assert pick(1).tolist() == [[2, 3], [2, 3]] and pick(2).tolist() == [[2, 3], [2, 3]]
    assert pick(1, mbr=0.01).tolist() == [[0, 3], [0, 3]]  # a sharp softmax: the most likely again
    with pytest.raises(GenieError, match="needs sample.temperature 0"):
        SampleConfig(temperature=1.0, mbr=1.0).check()
    with pytest.raises(GenieError, match="mbr must be a number >= 0"):
        SampleConfig(temperature=0.0, mbr=-1.0).check()


def test_mbr_worlds_cache_like_the_reference_and_batch_like_singles():
    def world(cached=True, mbr=1.0):
        w = tiny_world(cached=cached, context=8)
        w.sample = SampleConfig(steps=2, temperature=0.0, mbr=mbr, context=8, tokenizer_context=3, lam_context=4)
        return w

    cached, uncached, single, mode = world(), world(cached=False), world(), world(mbr=0.0)
    p = prompt()
    steps = [np.array([t % 4, (t + 1) % 4, 3]) for t in range(6)]
    for w in (cached, uncached, mode):
        w.reset(p, seed=[1, 2, 3])
    single.reset(p[1:2], seed=2)
    frames = [cached.step(a) for a in steps]
    assert all(np.array_equal(f, uncached.step(a)) for f, a in zip(frames, steps))
    assert all(np.array_equal(single.step(a[1:2])[0], f[1]) for f, a in zip(frames, steps))
    assert not all(np.array_equal(mode.step(a), f) for f, a in zip(frames, steps))  # mbr changes the picks

def test_prompts_of_any_size_and_channel_count():
    world = tiny_world()
    for image in (np.zeros((100, 80), np.uint8), np.zeros((30, 40, 4), np.uint16), np.zeros((64, 64, 3), np.uint8)):
        assert world.reset(image).shape == (1, 64, 64, 3)
    assert world.reset(prompt(b=2, t=3)).shape == (2, 64, 64, 3)
    assert world.infer_actions(prompt(b=2, t=9)).shape == (2, 8)  # spans two LAM windows
    assert world.reconstruct(prompt(b=1, t=5)[0]).shape == (5, 64, 64, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda w: w.step(np.array([9, 0, 0])), "in 0..3"),
        (lambda w: w.step(np.array([-1, 0, 0])), "in 0..3"),
        (lambda w: w.step(np.array([0, 1])), "expected 3 actions"),
        (lambda w: w.step(np.array([0.5, 1, 1])), "integers"),
        (lambda w: w.reset(np.zeros(5)), "expected images"),
        (lambda w: w.reset(np.zeros((2, 64, 64, 3), np.float32)), "uint8"),
        (lambda w: w.infer_actions(prompt(b=1, t=1)), "at least 2 frames"),
    ],
)
def test_bad_inputs_are_clear_errors(call, message):
    world = tiny_world()
    world.reset(prompt())
    with pytest.raises(GenieError, match=message):
        call(world)


def test_step_before_reset_is_an_error():
    with pytest.raises(GenieError, match="reset"):
        tiny_world().step(np.array([0]))


@pytest.fixture(scope="module")
def trained_world(tmp_path_factory):
    """Record synthetic footage, train a tiny tokenizer and world briefly, export both."""
    d = tmp_path_factory.mktemp("world")
    data = d / "data"
    assert main(["record", "--env", "synthetic", "--episodes", "8", "--max-steps", "40", "--out", str(data)]) == 0
    assert main(["train", "tokenizer", "--config", str(ROOT / "configs/tiny/tokenizer.yaml"), "--data", str(data),
                 "--out", str(d / "tok"), "train.max_steps=4", *FAST]) == 0
    assert main(["export", str(d / "tok"), "--out", str(d / "tok.bundle")]) == 0
    assert main(["train", "world", "--config", str(ROOT / "configs/tiny/world.yaml"), "--data", str(data),
                 "--tokenizer", str(d / "tok.bundle"), "--out", str(d / "run"), "train.max_steps=4",
                 "train.val_every=2", *FAST]) == 0
    assert main(["export", str(d / "run"), "--out", str(d / "world.bundle")]) == 0
    return d


def test_exported_world_loads_and_steps_on_cpu(trained_world):
    world = World.load(trained_world / "world.bundle", device="cpu")
    assert world.num_actions == 8 and world.frame_shape == (64, 64, 3)
    frames = world.reset(np.zeros((64, 64, 3), np.uint8), seed=0)
    assert frames.shape == (1, 64, 64, 3) and frames.dtype == np.uint8
    assert world.step(np.array([3])).shape == (1, 64, 64, 3)
    assert (trained_world / "run" / "samples" / "rollout-latest.png").is_file()


def test_export_sets_sampler_defaults(trained_world, tmp_path, capsys):
    out = tmp_path / "fast.bundle"
    assert main(["export", str(trained_world / "run"), "--out", str(out), "sample.steps=2",
                 "sample.temperature=0.5"]) == 0
    world = World.load(out, device="cpu")
    assert (world.sample.steps, world.sample.temperature) == (2, 0.5)
    assert main(["export", str(trained_world / "run"), "--out", str(tmp_path / "bad"), "sample.stesp=2"]) == 2
    assert "unknown key 'stesp'" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_train_compile_compiles_what_trains_and_exports_a_loadable_bundle(trained_world, tmp_path):
    assert main(["train", "world", "--config", str(ROOT / "configs/tiny/world.yaml"), "--data",
                 str(trained_world / "data"), "--tokenizer", str(trained_world / "tok.bundle"), "--out",
                 str(tmp_path / "run"), "train.max_steps=2", "train.val_every=100", "train.compile=true", *FAST]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "world.bundle")]) == 0
    world = World.load(tmp_path / "world.bundle", device="cpu")  # plain state_dict keys (no _orig_mod.)
    assert world.reset(np.zeros((64, 64, 3), np.uint8), seed=0).shape == (1, 64, 64, 3)


def test_world_run_resumes_and_continues(trained_world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_world / "run", run)
    resume = ["train", "world", "--data", str(trained_world / "data"), "--out", str(run), "--resume", *FAST]
    assert main([*resume, "dynamics.dim=96"]) == 2  # the model's shape stays
    assert "cannot change dynamics.dim when resuming (the run has 64, asked 96" in capsys.readouterr().err
    # the command that started the run, repeated with --resume, goes on (its shape is the run's own)
    assert main([*resume, "dynamics.dim=64", "train.max_steps=5"]) == 0
    # what only shapes the training inputs may change: the run goes on with action dropout
    assert main([*resume, "train.max_steps=6", "train.ckpt_every=1", "dynamics.action_dropout=0.1"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert [p.name for p in (run / "checkpoints").glob("last*")] == ["last.ckpt"]  # in its new folder too
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "sample.guidance=2"]) == 0
    world = World.load(tmp_path / "b", device="cpu")
    assert (world.dynamics.config.action_dropout, world.sample.guidance) == (0.1, 2.0)
    assert world.reset(np.zeros((64, 64, 3), np.uint8), seed=0).shape == (1, 64, 64, 3)
    assert world.step(np.array([1])).shape == (1, 64, 64, 3)


def test_lam_steps_train_the_lam_first_then_the_dynamics_on_its_frozen_actions(trained_world, tmp_path):
    run = tmp_path / "run"
    args = ["train", "world", "--data", str(trained_world / "data"), "--out", str(run), *FAST]
    assert main([*args, "--config", str(ROOT / "configs/tiny/world.yaml"), "--tokenizer",
                 str(trained_world / "tok.bundle"), "train.max_steps=2", "train.lam_steps=1",
                 "train.val_every=100"]) == 0

    def weights(step):
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert state["global_step"] == step
        return ({k: v for k, v in state["state_dict"].items() if k.startswith("lam.")},
                {k: v for k, v in state["state_dict"].items() if k.startswith("dynamics.")})

    lam2, dyn2 = weights(2)
    assert main([*args, "--resume", "train.max_steps=4"]) == 0
    lam4, dyn4 = weights(4)
    assert all(torch.equal(lam2[k], lam4[k]) for k in lam2)  # frozen: not even a codebook restart
    assert any(not torch.equal(dyn2[k], dyn4[k]) for k in dyn2)


def test_init_starts_a_run_from_a_bundles_weights_and_freeze_lam_keeps_its_lam(trained_world, tmp_path, capsys):
    from safetensors.torch import load_file

    bundle = load_file(trained_world / "world.bundle" / "model.safetensors")
    run = tmp_path / "run"
    args = ["train", "world", "--data", str(trained_world / "data"), *FAST, "--config",
            str(ROOT / "configs/tiny/world.yaml"), "--tokenizer", str(trained_world / "tok.bundle"),
            "train.max_steps=2", "train.val_every=100", "dynamics.action_dropout=0.1"]  # training-only: may differ
    assert main([*args, "--out", str(run), f"train.init={trained_world / 'world.bundle'}", "train.freeze_lam=true",
                 "train.lr=1e-6"]) == 0
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    lam = {k: v for k, v in state.items() if k.startswith("lam.")}
    assert lam and all(torch.equal(v, bundle[k]) for k, v in lam.items())  # loaded, then never trained
    dyn = [k for k in state if k.startswith("dynamics.") and k in bundle and state[k].is_floating_point()]
    assert all(torch.allclose(state[k], bundle[k], atol=1e-4) for k in dyn)  # loaded, then barely moved
    assert not all(torch.equal(state[k], bundle[k]) for k in dyn)  # but trained
    assert main([*args, "--out", str(tmp_path / "other"), f"train.init={trained_world / 'world.bundle'}",
                 "dynamics.dim=48"]) == 2
    assert "its dynamics.dim is 64 but this run's is 48" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()  # refused before the run folder was made
    assert main([*args, "--out", str(tmp_path / "other"), "train.freeze_lam=true"]) == 2  # nothing to freeze
    old = tmp_path / "old.bundle"  # a bundle from before lam.encoder_history: it holds the default, True
    shutil.copytree(trained_world / "world.bundle", old)
    config = json.loads((old / "config.json").read_text())
    del config["components"]["lam"]["encoder_history"]
    (old / "config.json").write_text(json.dumps(config))
    assert main([*args, "--out", str(tmp_path / "other"), f"train.init={old}", "lam.encoder_history=false"]) == 2
    assert "its lam.encoder_history is True but this run's is False" in capsys.readouterr().err
    # spatial rotary attention changes what the dynamics computes, not its weights: a warm start may add it
    assert main([*args, "--out", str(tmp_path / "rope"), f"train.init={old}", "dynamics.spatial_rope=true"]) == 0
    assert yaml.safe_load((tmp_path / "rope" / "config.yaml").read_text())["dynamics"]["spatial_rope"] is True


def test_decoder_only_trains_a_worlds_decoder_and_export_puts_it_back_with_the_same_tokens(trained_world, tmp_path,
                                                                                             capsys):
    from safetensors.torch import load_file

    world_bundle = trained_world / "world.bundle"
    bundle = load_file(world_bundle / "model.safetensors")
    args = ["train", "tokenizer", "--data", str(trained_world / "data"), *FAST, "--config",
            str(ROOT / "configs/tiny/tokenizer.yaml"), "train.max_steps=3", "train.val_every=100"]
    # restart_every=1 would move idle codes at every step if the codebook were not frozen
    # one decoder block more than the world's; restart_every=1 would move idle codes at every step if
    # the codebook were not frozen
    assert main([*args, "--out", str(tmp_path / "dec"), f"train.init={world_bundle}", "train.decoder_only=true",
                 "model.decoder_depth=3", "model.restart_every=1", "train.lr=1e-2"]) == 0
    state = torch.load(tmp_path / "dec" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    tok = {k.removeprefix("model."): v for k, v in state.items()}
    frozen = ("embed.", "enc_pos", "encoder.", "vq.proj_in.", "vq.codebook")
    assert all(torch.equal(v, bundle[f"tokenizer.{k}"]) for k, v in tok.items() if k.startswith(frozen))
    assert not all(torch.equal(v, bundle[f"tokenizer.{k}"]) for k, v in tok.items() if k.startswith("decoder.blocks.0."))
    assert "decoder.blocks.2.mlp.2.weight" in tok and "tokenizer.decoder.blocks.2.mlp.2.weight" not in bundle

    assert main(["export", str(tmp_path / "dec"), "--out", str(tmp_path / "new.bundle"), "--world", str(world_bundle)]) == 0
    old, new = World.load(world_bundle, device="cpu"), World.load(tmp_path / "new.bundle", device="cpu")
    frames = torch.as_tensor(ClipDataset(find_shards(trained_world / "data"), 4)[0]["frames"])[None]
    assert torch.equal(old.tokenizer.encode(frames).indices, new.tokenizer.encode(frames).indices)
    for name in ("lam", "dynamics"):
        a, b = getattr(old, name).state_dict(), getattr(new, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(old.tokenizer.head.weight, new.tokenizer.head.weight)
    assert new.sample == old.sample and new.tokenizer.config.decoder_depth == 3

    # a tokenizer whose encoder moved would give the world other tokens: refused, nothing written
    assert main([*args, "--out", str(tmp_path / "whole"), f"train.init={world_bundle}", "train.lr=1e-2"]) == 0
    assert main(["export", str(tmp_path / "whole"), "--out", str(tmp_path / "bad"), "--world", str(world_bundle)]) == 2
    err = capsys.readouterr().err
    assert "differs from" in err and "train.decoder_only=true" in err and not (tmp_path / "bad").exists()
    assert main([*args, "--out", str(tmp_path / "x"), "train.decoder_only=true"]) == 2  # no decoder to start from
    assert "set train.init" in capsys.readouterr().err
    assert main(["train", "world", "--data", str(trained_world / "data"), "--out", str(tmp_path / "y"), *FAST,
                 "--config", str(ROOT / "configs/tiny/world.yaml"), "--tokenizer", str(trained_world / "tok.bundle"),
                 f"train.init={world_bundle}", "train.decoder_only=true"]) == 2
    assert "train.decoder_only is for the tokenizer stage" in capsys.readouterr().err


def test_max_minutes_stops_a_run_in_time_and_leaves_an_exportable_checkpoint(trained_world, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "world", "--data", str(trained_world / "data"), "--out", str(run), *FAST,
                 "--config", str(ROOT / "configs/tiny/world.yaml"), "--tokenizer", str(trained_world / "tok.bundle"),
                 "train.max_steps=100000", "train.max_minutes=0.001", "train.val_every=100000"]) == 0
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 1 <= step < 100
    assert main(["export", str(run), "--out", str(tmp_path / "bundle")]) == 0
    assert World.load(tmp_path / "bundle", device="cpu").num_actions == 8


def test_lam_steps_restart_the_learning_rate_schedule_and_count_in_the_budget():
    from genie.training.common import TrainConfig, make_optimizer
    from genie.training.scale import steps_for_budget

    cfg = TrainConfig(max_steps=100, warmup_steps=10, lam_steps=40, batch_size=2)
    sched = make_optimizer(torch.nn.Linear(2, 2), cfg, phase_starts=(cfg.lam_steps,))["lr_scheduler"]["scheduler"]
    factors = [sched.lr_lambdas[0](step) for step in range(100)]
    assert factors[0] == factors[40] == 0.1 and factors[9] == factors[49] == 1.0  # a warm-up in each phase
    assert factors[39] < 0.2 and factors[99] < 0.2  # each phase decays to its end
    m = {"total_flops": 10, "dyn_flops": 6, "lam_flops": 3, "lam_infer_flops": 1, "encode_flops": 1}
    co = TrainConfig(batch_size=2)
    assert steps_for_budget(co, m, 2000) == 100
    assert steps_for_budget(cfg, m, 40 * 2 * 3 + 16 * 60) == 40 + 60  # the LAM's steps cost 3, the rest 8
    with pytest.raises(ValueError, match="lam_steps"):
        steps_for_budget(cfg, m, 100)
    with pytest.raises(ValueError, match="lam_steps"):
        TrainConfig(max_steps=10, lam_steps=10)


def test_eval_writes_json_with_delta_psnr_and_probe(trained_world, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(trained_world / "world.bundle"), "--data", str(trained_world / "data"),
                 "--json", str(out), "--clips", "4", "--horizon", "4"]) == 0
    result = json.loads(out.read_text())
    assert len(result["delta_psnr"]) == 4 and result["delta_psnr_at_4"] == result["delta_psnr"][3]
    assert 0 <= result["probe"]["accuracy"] <= 1 and 0 < result["probe"]["majority_baseline"] <= 1
    assert "delta-t PSNR @ t=4" in capsys.readouterr().out


def test_sample_writes_gif_and_all_actions_grid(trained_world, tmp_path):
    image = tmp_path / "sketch.png"
    cv2.imwrite(str(image), np.full((120, 90), 200, np.uint8))  # a gray image of another size
    gif = tmp_path / "rollout.gif"
    assert main(["sample", str(trained_world / "world.bundle"), "--prompt", str(image), "--actions", "1,1,2",
                 "--out", str(gif)]) == 0
    ok, frames = cv2.imreadanimation(str(gif))
    assert ok and len(frames.frames) == 4  # the prompt and 3 steps
    grid = tmp_path / "all.png"
    assert main(["sample", str(trained_world / "world.bundle"), "--prompt", str(image), "--all-actions",
                 "--length", "2", "--out", str(grid), "--scale", "1"]) == 0
    assert cv2.imread(str(grid)).shape[0] > 8 * 64  # one row per latent action


def test_bad_sample_inputs_exit_with_one_line(trained_world, tmp_path, capsys):
    bundle = str(trained_world / "world.bundle")
    assert main(["sample", bundle, "--prompt", str(tmp_path / "missing.png"), "--actions", "1", "--out",
                 str(tmp_path / "x.gif")]) == 2
    image = tmp_path / "p.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    assert main(["sample", bundle, "--prompt", str(image), "--actions", "1,99", "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert "missing.png" in err and "0..7" in err and "Traceback" not in err


def test_world_bundle_of_another_version_is_refused(trained_world, tmp_path):
    import shutil

    bundle = tmp_path / "old"
    shutil.copytree(trained_world / "world.bundle", bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["format_version"] = 0
    (bundle / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenieError, match="format version 0"):
        World.load(bundle, device="cpu")


def test_lam_decoder_predicts_a_residual_on_frame_t():
    torch.manual_seed(0)
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1))
    torch.nn.init.zeros_(lam.head.weight)
    torch.nn.init.zeros_(lam.head.bias)
    video = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    out = lam(video)
    assert torch.equal(float_to_frames(out.recon), video[:, :-1])  # a zero residual copies frame t


@pytest.mark.parametrize("history", [True, False])
def test_lam_decoder_without_history_sees_frame_t_alone(history):
    torch.manual_seed(0)
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, decoder_history=history))
    video = torch.randint(0, 256, (1, 4, 64, 64, 3), dtype=torch.uint8)
    fixed = lam.encode(video)
    lam.encode = lambda frames: fixed  # the same actions for both videos
    other = video.clone()
    other[:, 0] = 255 - other[:, 0]  # another frame 0
    a, b = lam(video).recon, lam(other).recon
    assert not torch.allclose(a[:, 0], b[:, 0])  # frame 1 is predicted from frame 0
    assert torch.allclose(a[:, 1:], b[:, 1:]) != history  # frames 2, 3 see frame 0 only through history


@pytest.mark.parametrize("history", [True, False])
def test_lam_encoder_without_history_reads_each_transition_from_its_two_frames(history):
    torch.manual_seed(0)
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=2, decoder_depth=1, patch_size=16,
                                      encoder_history=history)).eval()
    video = torch.randint(0, 256, (2, 5, 64, 64, 3), dtype=torch.uint8)
    other = video.clone()
    other[:, 0] = 255 - other[:, 0]  # another frame 0
    a, b = lam.encode(video).similarity, lam.encode(other).similarity  # [B,4,A]
    assert not torch.allclose(a[:, 0], b[:, 0])  # transition 0 -> 1 holds frame 0
    assert torch.allclose(a[:, 2:], b[:, 2:]) != history  # 2 -> 3 and 3 -> 4 see frame 0 only through history
    alone = lam.encode(video[:, 2:4]).similarity[:, 0]  # transition 2 -> 3 in a window of its own
    assert torch.allclose(alone, a[:, 2], atol=1e-5) != history


def test_lam_warp_moves_frame_t_by_its_flow():
    from genie.models.lam import warp

    frames = torch.rand(2, 3, 16, 16, 3)
    still = torch.zeros(2, 3, 16, 2)  # a 4x4 grid of patches
    assert torch.allclose(warp(frames, still, (4, 4)), frames, atol=1e-5)
    left = still.clone()
    left[..., 0] = 1.0  # every pixel takes the content 1 px to its right: the view moves left
    assert torch.allclose(warp(frames, left, (4, 4))[..., :, :-1, :], frames[..., :, 1:, :], atol=1e-5)
    torch.manual_seed(0)
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, patch_size=16, warp=True))
    torch.nn.init.zeros_(lam.head.weight)
    torch.nn.init.zeros_(lam.head.bias)
    video = torch.randint(0, 256, (1, 3, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(float_to_frames(lam(video).recon), video[:, :-1])  # no flow, no residual: a copy


def test_lam_loss_weighs_pixels_that_changed():
    from genie.models.lam import LAMOutput

    video = torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8)
    video[0, 1, :8, :8] = 255  # a small patch changes between the two frames
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, change_weight=20.0))
    vq = lam.encode(video)
    vq.loss = torch.zeros(())
    target = video[:, 1:].float() / 127.5 - 1
    wrong_where_changed = target.clone()
    wrong_where_changed[0, 0, :8, :8] = -1.0
    wrong_elsewhere = target.clone()
    wrong_elsewhere[0, 0, 32:40, 32:40] = 1.0
    a, mse_a = lam.loss(video, LAMOutput(wrong_where_changed, vq.indices, vq))
    b, mse_b = lam.loss(video, LAMOutput(wrong_elsewhere, vq.indices, vq))
    assert torch.allclose(mse_a, mse_b)  # the same plain error...
    assert a > 10 * b  # ...counts far more where the frame changed


def test_lam_mirror_loss_is_zero_only_for_codes_that_mirror_with_the_clip():
    torch.manual_seed(0)
    video = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, patch_size=16, mirror=0.5))
    out = lam(video)
    total, _ = lam.loss(video, out)
    plain = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, patch_size=16))
    plain.load_state_dict(lam.state_dict())
    assert out.mirror > 0 and torch.allclose(total, plain.loss(video, out)[0] + 0.5 * out.mirror)
    assert lam.eval()(video).mirror is None and plain.train()(video).mirror is None  # training only, when asked
    # features that ignore left and right (a constant) cannot mirror: the loss says how far they are
    lam.train().features = lambda frames: torch.ones(frames.shape[0], frames.shape[1] - 1, 32)
    z = torch.nn.functional.normalize(lam.vq.proj_in(torch.ones(32)), dim=-1)
    assert torch.allclose(lam(video).mirror, 4 * z[: z.shape[0] // 2].pow(2).sum())


def test_lam_relative_loss_weighs_a_small_change_like_a_large_one():
    from genie.models.lam import LAMOutput

    video = torch.zeros(2, 2, 64, 64, 3, dtype=torch.uint8)
    video[0, 1, :4, :4] = 255  # clip 0: a sprite-sized change
    video[1, 1, :, :32] = 255  # clip 1: half the frame changes
    copy = video[:, :1].float() / 127.5 - 1  # a decoder that explains nothing: frame t again
    for relative, ratio in ((False, (0, 0.5)), (True, (0.9, 1.1))):
        lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, balance=True,
                                          relative=relative, relative_floor=1e-6))
        vq = lam.encode(video)
        vq.loss = torch.zeros(())
        small, _ = lam.loss(video[:1], LAMOutput(copy[:1], vq.indices[:1], vq))
        large, _ = lam.loss(video[1:], LAMOutput(copy[1:], vq.indices[1:], vq))
        assert ratio[0] < small / large < ratio[1]  # relative: each counts as 1 (all of its change unexplained)
