"""The shared building blocks: ST transformer causality and caching, the vector quantizer."""

import pytest
import torch
import torch.nn.functional as F

from genie.nn import STTransformer, VectorQuantizer, st_transformer
from genie.nn.st_transformer import TanhGELU, rotary, rotary_tables, spatial_rotary_tables


def tiny_st(causal=True, spatial_grid=None):
    torch.manual_seed(0)
    return STTransformer(dim=32, depth=2, heads=4, causal=causal, spatial_grid=spatial_grid).eval()


def test_changing_a_later_frame_changes_no_earlier_output():
    model = tiny_st()
    x = torch.randn(2, 6, 5, 32)
    y = x.clone()
    y[:, 3] += torch.randn_like(y[:, 3])  # perturb frame t+1 = 3
    out_x, out_y = model(x), model(y)
    assert torch.equal(out_x[:, :3], out_y[:, :3])  # frames <= t untouched, bit for bit
    assert not torch.allclose(out_x[:, 3:], out_y[:, 3:])  # frame 3 and later do change


def test_spatial_attention_mixes_patches_within_a_frame():
    model = tiny_st()
    x = torch.randn(1, 2, 5, 32)
    y = x.clone()
    y[:, 0, 0] += torch.randn(32)  # one patch of frame 0
    diff = (model(x) - model(y)).abs().amax(dim=-1)  # [1, T, N]
    assert (diff[0, 0, 1:] > 0).all()  # every other patch of frame 0 sees it


@pytest.mark.parametrize("spatial_grid", [None, (1, 5)])
@pytest.mark.parametrize("one_query", ["broadcast", "kernel"])
def test_cached_frame_by_frame_equals_full_sequence(one_query, spatial_grid, monkeypatch):
    if one_query == "kernel":  # the fused kernel, as for one-query calls too large for the broadcast form
        monkeypatch.setattr(st_transformer, "SMALL_ONE_QUERY", 0)
    model = tiny_st(spatial_grid=spatial_grid)
    x = torch.randn(2, 7, 5, 32)
    full = model(x)
    cache = model.new_cache(window=16)
    steps = [model(x[:, :3], cache=cache, update_cache=True)]  # a prompt of 3 frames
    steps += [model(x[:, t : t + 1], cache=cache, update_cache=True) for t in range(3, 7)]
    assert cache.pos == 7 and len(cache) == 7
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_is_only_updated_when_asked_and_slides():
    model = tiny_st()
    cache = model.new_cache(window=3)
    x = torch.randn(1, 5, 4, 32)
    model(x[:, :1], cache=cache, update_cache=False)
    assert len(cache) == 0 and cache.pos == 0
    for t in range(5):
        model(x[:, t : t + 1], cache=cache, update_cache=True)
    assert len(cache) == 3 and cache.pos == 5  # oldest frames dropped, positions keep counting


def test_quantizer_returns_codes_and_straight_through_gradients():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=16, codebook_size=8, code_dim=4)
    x = torch.randn(3, 10, 16, requires_grad=True)
    out = vq(x)
    assert out.quantized.shape == x.shape and out.indices.shape == (3, 10)
    assert out.indices.dtype == torch.int64 and int(out.indices.max()) < 8
    (out.quantized.sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients pass the argmax
    torch.testing.assert_close(vq.embed(out.indices), out.quantized, atol=1e-5, rtol=1e-5)


def collapsed_quantizer(restart_every):
    """A quantizer whose codes are all identical, so every input picks code 0."""
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=8, codebook_size=16, code_dim=4, restart_every=restart_every)
    with torch.no_grad():
        vq.codebook.data[:] = torch.tensor([1.0, 0, 0, 0])
    return vq


def test_dead_code_restart_revives_unused_codes():
    vq = collapsed_quantizer(restart_every=5)
    data = torch.randn(512, 8)
    assert vq.eval()(data).indices.unique().numel() == 1
    vq.train()
    for _ in range(6):
        vq(data)
    assert vq.eval()(data).indices.unique().numel() >= 12  # restarted codes now win inputs


def test_without_restarts_dead_codes_stay_dead():
    vq = collapsed_quantizer(restart_every=0)
    data = torch.randn(512, 8)
    vq.train()
    for _ in range(6):
        vq(data)
    assert vq.eval()(data).indices.unique().numel() == 1


def test_ring_cache_wraps_without_losing_a_frame():
    """A ring of window + 2 slots wraps every few frames; one with a slot per frame never does. Same
    window, so the same outputs, frame by frame, long after the window first slides."""
    model = tiny_st()
    x = torch.randn(1, 30, 3, 32)
    small, large = model.new_cache(window=4), model.new_cache(window=4, max_new=40)
    outs = {id(small): [], id(large): []}
    for cache in (small, large):
        outs[id(cache)].append(model(x[:, :2], cache=cache, update_cache=True))
        for t in range(2, 30):
            model(x[:, t : t + 1] * 0.5, cache=cache, update_cache=False)  # a probe the next call overwrites
            outs[id(cache)].append(model(x[:, t : t + 1], cache=cache, update_cache=True))
    torch.testing.assert_close(torch.cat(outs[id(small)], 1), torch.cat(outs[id(large)], 1), atol=1e-5, rtol=1e-5)
    assert small.slots == 6 and small.pos == 30 and len(small) == 4
    deferred, stepwise = model.new_cache(window=4), model.new_cache(window=4)  # the sampler's way, and one by one
    model(x[:, :1], cache=stepwise, update_cache=True)
    for t in range(1, 30):
        probe = x[:, t : t + 1] * 0.5
        expected = model(probe, cache=stepwise, update_cache=False)
        model(x[:, t : t + 1], cache=stepwise, update_cache=True)
        got = model(torch.cat((x[:, t - 1 : t], probe), 1), cache=deferred, update_cache=1)  # commits frame t-1
        torch.testing.assert_close(got[:, 1:], expected, atol=1e-5, rtol=1e-5)
    full = model(x)  # no window: frames beyond the first 5 see more history
    assert not torch.allclose(torch.cat(outs[id(small)], 1)[:, 10:], full[:, 10:], atol=1e-3)


def test_counter_based_draws_are_fresh_for_any_number_of_rounds():
    from genie.nn.maskgit import uniform

    seeds = torch.tensor([3, 4])
    draws = torch.stack([uniform(seeds, frame, 8, r) for frame in range(3) for r in range(100)])  # [300, 2, 8]
    flat = draws.reshape(300, -1)
    assert len({tuple(row.tolist()) for row in flat}) == 300  # no (frame, round) pair repeats another
    assert torch.equal(uniform(seeds[1:], 2, 8, 70), uniform(seeds, torch.tensor(2), 8, 70)[1:])  # batch-free


def test_a_prompt_longer_than_the_ring_is_taken_in_pieces():
    model = tiny_st()
    x = torch.randn(1, 9, 3, 32)
    whole = model(x, cache=(a := model.new_cache(window=3)), update_cache=True)  # 9 frames, 5 slots
    b = model.new_cache(window=3)
    one_by_one = torch.cat([model(x[:, t : t + 1], cache=b, update_cache=True) for t in range(9)], 1)
    torch.testing.assert_close(whole, one_by_one, atol=1e-5, rtol=1e-5)
    assert a.pos == b.pos == 9


def test_inference_gelu_is_the_trained_tanh_gelu_and_training_keeps_its_gradient():
    x = torch.linspace(-8, 8, 4001)
    with torch.no_grad():  # the in-place sigmoid form
        fast = TanhGELU()(x)
    torch.testing.assert_close(fast, F.gelu(x, approximate="tanh"), atol=1e-6, rtol=1e-5)
    assert torch.equal(x, torch.linspace(-8, 8, 4001))  # its input is left alone
    with torch.no_grad():  # bf16 in, bf16 out, computed in fp32
        half = TanhGELU()(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half, F.gelu(x.bfloat16().float(), approximate="tanh").bfloat16())  # to bf16 precision
    y = x.clone().requires_grad_()
    TanhGELU()(y).sum().backward()
    z = x.clone().requires_grad_()
    F.gelu(z, approximate="tanh").sum().backward()
    assert torch.equal(y.grad, z.grad)


def test_spatial_rotary_scores_depend_only_on_how_far_apart_two_patches_are():
    h, w, d = 4, 5, 8
    tables = spatial_rotary_tables(h, w, d)  # [h*w, d/2], row-major patches
    q, k = torch.randn(d), torch.randn(d)

    def score(a, b):  # a, b: (row, col)
        return rotary(q, tables[a[0] * w + a[1]]) @ rotary(k, tables[b[0] * w + b[1]])

    torch.testing.assert_close(score((0, 1), (2, 0)), score((1, 3), (3, 2)))  # same offset, moved (1, 2)
    torch.testing.assert_close(score((1, 1), (1, 2)), score((3, 3), (3, 4)))  # "one patch to the right"
    assert not torch.allclose(score((1, 1), (1, 2)), score((1, 2), (1, 1)))  # right is not left
    assert not torch.allclose(score((1, 1), (1, 2)), score((1, 1), (2, 1)))  # nor down
    x = torch.randn(1, 2, 20, 32)
    assert not torch.allclose(tiny_st()(x), tiny_st(spatial_grid=(h, w))(x))  # same weights, the rotations change it
    with pytest.raises(ValueError, match="divisible by 4"):
        STTransformer(dim=24, depth=1, heads=4, spatial_grid=(2, 2))


def test_rotary_turns_each_channel_pair_by_its_angle():
    positions = torch.tensor([0, 3, 1000])
    x = torch.randn(2, 3, 3, 8)
    out = rotary(x, rotary_tables(positions, 8))
    angles = positions[:, None].float() * 10_000.0 ** (-torch.arange(0, 8, 2).float() / 8)  # [L, 4]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    torch.testing.assert_close(out[..., 0::2], x1 * cos - x2 * sin)
    torch.testing.assert_close(out[..., 1::2], x1 * sin + x2 * cos)
    assert torch.equal(out[:, :, 0], x[:, :, 0])  # position 0 is not turned
