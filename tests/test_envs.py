"""The Gymnasium envs over genie.World: API checks, seeding, prompts, rewards, rendering, batching."""

import os
import warnings
from pathlib import Path

import cv2
import gymnasium
import h5py
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers genie/World-v0)
from data_pipeline.ingest import read_prompt
from envs.vector_env import WorldVectorEnv
from envs.world_env import WorldEnv
from genie.cli import main
from genie.errors import GenieError
from genie.models.dynamics import Dynamics, DynamicsConfig
from genie.models.lam import LAMConfig, LatentActionModel
from genie.models.tokenizer import TokenizerConfig, VideoTokenizer
from genie.world import SampleConfig, World

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)
os.environ["SDL_VIDEODRIVER"] = "dummy"  # "human" rendering without a display


def tiny_world(context=6) -> World:  # as in tests/test_world.py: random weights, 64x64, 4 actions
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(patch_size=8, dim=32, encoder_depth=1, decoder_depth=1, heads=2,
                                         codebook_size=64, code_dim=8))
    lam = LatentActionModel(LAMConfig(dim=32, heads=2, encoder_depth=1, decoder_depth=1, num_actions=4))
    dyn = Dynamics(DynamicsConfig(vocab_size=64, grid_h=8, grid_w=8, num_actions=4, dim=32, depth=2, heads=2))
    sample = SampleConfig(steps=4, context=context, tokenizer_context=3, lam_context=4)
    return World(tok, lam, dyn, sample, device="cpu", cached=True)


def random_prompts(n=3, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))


def rollout(env, seed, actions):
    obs, info = env.reset(seed=seed)
    return [obs] + [env.step(a)[0] for a in actions], info


def quiet_check_env(env):
    """check_env's warnings (gymnasium's and ours), not those of packages imported on the way
    (e.g. setuptools' pkg_resources notice when pygame loads)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught if "gymnasium" in w.filename or str(ROOT) in w.filename]


def test_env_passes_gymnasiums_checker():
    env = WorldEnv(tiny_world(), prompts=random_prompts())
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gymnasium.spaces.Discrete(4)
    messages = quiet_check_env(env)
    assert all("spec" in m for m in messages), messages  # only: alternative render modes need make()


def test_made_env_passes_the_checker_in_every_render_mode():
    env = gymnasium.make("genie/World-v0", world=tiny_world(), prompts=random_prompts())
    assert isinstance(env.unwrapped, WorldEnv) and env.spec.max_episode_steps == 1000
    assert quiet_check_env(env.unwrapped) == []  # also makes copies with render_mode rgb_array and human
    assert all("different from the unwrapped" in m for m in quiet_check_env(env))  # through the wrappers


def test_same_seed_same_frames_other_seed_other_frames():
    env = WorldEnv(tiny_world(), prompts=random_prompts())
    actions = [0, 3, 1, 2, 2]
    a, info_a = rollout(env, 7, actions)
    b, info_b = rollout(env, 7, actions)
    c, _ = rollout(env, 8, actions)
    assert info_a == info_b and set(info_a) == {"prompt_index", "world_seed"}
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a[1:], c[1:]))


def test_frames_are_the_worlds_own(tmp_path):
    image = tmp_path / "wide.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (50, 90, 3), dtype=np.uint8))
    env = WorldEnv(tiny_world(), prompts=[image])
    obs, info = env.reset(seed=3)
    world = tiny_world()
    expected = world.reset(read_prompt(image), seed=info["world_seed"])[0]  # World's own resize rule
    assert np.array_equal(obs, expected)
    assert np.array_equal(env.step(2)[0], world.step(np.array([2]))[0])


def test_prompts_from_image_files_of_odd_sizes_and_channels(tmp_path):
    files = [tmp_path / "gray.png", tmp_path / "rgba.png", tmp_path / "deep.png"]
    cv2.imwrite(str(files[0]), np.full((100, 80), 200, np.uint8))
    cv2.imwrite(str(files[1]), np.zeros((30, 40, 4), np.uint8))
    cv2.imwrite(str(files[2]), np.full((64, 70, 3), 40000, np.uint16))
    env = WorldEnv(tiny_world(), prompts=[str(f) for f in files])
    assert env.prompts.shape == (3, 64, 64, 3) and env.prompts.dtype == np.uint8
    assert (env.prompts[0] == 200).all() and (env.prompts[1] == 0).all()
    seen = {env.reset(seed=s)[1]["prompt_index"] for s in range(20)}
    assert seen == {0, 1, 2}
    assert WorldEnv(tiny_world(), prompts=files[0]).prompts.shape == (1, 64, 64, 3)  # one image path


def test_prompts_from_a_shard_folder_are_the_episodes_first_frames(tmp_path):
    data = tmp_path / "data"
    assert main(["record", "--env", "synthetic", "--episodes", "3", "--max-steps", "10", "--out", str(data)]) == 0
    env = WorldEnv(tiny_world(), prompts=data)
    (shard,) = data.rglob("*.h5")
    with h5py.File(shard, "r") as f:
        firsts = f["frames"][()][f["episodes"][:, 0]]
    assert np.array_equal(env.prompts, firsts)
    assert np.array_equal(WorldEnv(tiny_world(), prompts=shard).prompts, firsts)
    assert env.reset(seed=0)[0].shape == (64, 64, 3)


def test_no_prompts_start_from_mid_gray():
    env = WorldEnv(tiny_world())
    assert env.prompts.shape == (1, 64, 64, 3) and (env.prompts == 128).all()


def test_reward_and_done_functions_are_used():
    seen = []

    def reward_fn(prev, action, obs):
        seen.append((prev, action, obs))
        return float(action) + np.abs(obs.astype(float) - prev).mean()

    env = WorldEnv(tiny_world(), prompts=random_prompts(), reward_fn=reward_fn, done_fn=lambda obs: len(seen) == 3)
    obs0, _ = env.reset(seed=0)
    results = [env.step(a) for a in (1, 2, 3)]
    rewards, terminated = [r[1] for r in results], [r[2] for r in results]
    frames = [obs0] + [r[0] for r in results]
    for t, a in enumerate((1, 2, 3)):
        assert np.array_equal(seen[t][0], frames[t]) and seen[t][1] == a and np.array_equal(seen[t][2], frames[t + 1])
        assert rewards[t] == pytest.approx(a + np.abs(frames[t + 1].astype(float) - frames[t]).mean())
    assert terminated == [False, False, True]
    assert all(r[3] is False and r[4] == {} for r in results)
    env = WorldEnv(tiny_world())
    env.reset(seed=0)
    assert env.step(0)[1:4] == (0.0, False, False)


def test_time_limit_truncates():
    env = gymnasium.make("genie/World-v0", world=tiny_world(), max_episode_steps=2)
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(2)] == [False, True]
    direct = WorldEnv(tiny_world(), max_episode_steps=2)
    direct.reset(seed=0)
    assert [direct.step(0)[3] for _ in range(2)] == [False, True]


@pytest.mark.parametrize("action", [4, -1, 1.0, "1", np.array([1, 2])])
def test_out_of_range_action_is_a_clear_error(action):
    env = WorldEnv(tiny_world())
    env.reset(seed=0)
    with pytest.raises(GenieError, match="not in Discrete\\(4\\)"):
        env.step(action)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: WorldEnv(tiny_world()).step(0), "before reset"),
        (lambda: WorldEnv(tiny_world(), prompts=[np.zeros((8, 8, 3), np.float32)]), "uint8 or uint16"),
        (lambda: WorldEnv(tiny_world(), prompts=[]), "no prompt images"),
        (lambda: WorldEnv(tiny_world(), prompts="/nonexistent/data"), "not found"),
        (lambda: WorldEnv(tiny_world(), prompts="/nonexistent/data.h5"), "does not exist"),
        (lambda: WorldEnv(tiny_world(), steps=3), "World instance"),
        (lambda: WorldEnv(42), "bundle path or a genie.World"),
        (lambda: WorldEnv(tiny_world(), render_mode="ansi"), "render_mode"),
    ],
)
def test_bad_arguments_are_clear_errors(make, message):
    with pytest.raises(GenieError, match=message):
        make()


def test_render_rgb_array_returns_the_frame():
    env = WorldEnv(tiny_world(), render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs)
    obs = env.step(1)[0]
    assert np.array_equal(env.render(), obs)


def test_render_human_opens_a_scaled_window_headless():
    import pygame

    env = WorldEnv(tiny_world(), render_mode="human")
    obs, _ = env.reset(seed=0)
    obs = env.step(1)[0]
    screen = pygame.display.get_surface()
    assert screen.get_size() == (256, 256)
    shown = pygame.surfarray.array3d(screen).transpose(1, 0, 2)  # pygame is [x, y]
    assert np.array_equal(shown[::4, ::4], obs) and np.array_equal(shown[3::4, 3::4], obs)
    env.close()
    env.close()
    assert not pygame.display.get_init()


def test_two_envs_on_one_world_is_an_error():
    world = tiny_world()
    a, b = WorldEnv(world), WorldEnv(world)
    a.reset(seed=0)
    b.reset(seed=1)
    with pytest.raises(GenieError, match="another env"):
        a.step(0)
    sync = gymnasium.make_vec("genie/World-v0", num_envs=2, vectorization_mode="sync", world=world)
    sync.reset(seed=0)
    with pytest.raises(GenieError, match="another env"):
        sync.step(np.array([0, 0]))


# ---------------------------------------------------------------------- the vector env
def counting(world, monkeypatch):
    batches = []
    step = world.step
    monkeypatch.setattr(world, "step", lambda actions: batches.append(len(actions)) or step(actions))
    return batches


def test_make_vec_gives_the_native_vector_env_stepping_once_per_step(monkeypatch):
    world = tiny_world()
    batches = counting(world, monkeypatch)
    envs_ = gymnasium.make_vec("genie/World-v0", num_envs=5, vectorization_mode="vector_entry_point", world=world,
                               prompts=random_prompts())
    assert isinstance(envs_, WorldVectorEnv) and envs_.max_episode_steps == 1000
    assert envs_.observation_space.shape == (5, 64, 64, 3) and envs_.action_space.shape == (5,)
    assert envs_.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    obs, info = envs_.reset(seed=0)
    assert obs.shape == (5, 64, 64, 3) and obs.dtype == np.uint8 and info["prompt_index"].shape == (5,)
    for _ in range(3):
        obs, rewards, terminated, truncated, _ = envs_.step(envs_.action_space.sample())
    assert obs.shape == (5, 64, 64, 3) and rewards.shape == terminated.shape == truncated.shape == (5,)
    assert batches == [5, 5, 5]
    assert obs in envs_.observation_space


def test_vector_env_frames_equal_single_envs_with_seeds_s_plus_i():
    n, seed, actions = 4, 10, np.array([[0, 1, 2, 3], [3, 3, 0, 1], [1, 2, 3, 0], [2, 0, 1, 1], [0, 0, 3, 2],
                                          [1, 1, 1, 1], [2, 3, 0, 0], [3, 2, 2, 2]])  # 8 steps: the window slides
    vec = WorldVectorEnv(n, tiny_world(), prompts=random_prompts())
    obs, info = vec.reset(seed=seed)
    frames = [obs] + [vec.step(a)[0] for a in actions]
    single = WorldEnv(tiny_world(), prompts=random_prompts())
    for i in range(n):
        alone, single_info = rollout(single, seed + i, actions[:, i])
        assert single_info == {"prompt_index": info["prompt_index"][i], "world_seed": info["world_seed"][i]}
        for t, frame in enumerate(alone):
            assert np.array_equal(frame, frames[t][i]), (i, t)
    assert len(set(info["world_seed"].tolist())) == n


def test_vector_env_autoresets_all_worlds_on_the_next_step():
    n, seed = 3, 5
    vec = WorldVectorEnv(n, tiny_world(), prompts=random_prompts(), done_fn=lambda obs: True,
                         reward_fn=lambda prev, a, obs: 1.0)
    vec.reset(seed=seed)
    _, rewards, terminated, truncated, _ = vec.step(np.zeros(n, np.int64))
    assert terminated.all() and not truncated.any() and (rewards == 1).all()
    obs, rewards, terminated, truncated, info = vec.step(np.ones(n, np.int64))  # the next episode's first frames
    assert not terminated.any() and not truncated.any() and (rewards == 0).all() and info["_prompt_index"].all()
    single = WorldEnv(tiny_world(), prompts=random_prompts())
    for i in range(n):
        single.reset(seed=seed + i)
        second, single_info = single.reset()  # a single env's next seedless reset
        assert np.array_equal(obs[i], second) and single_info["world_seed"] == info["world_seed"][i]


def test_vector_env_truncates_together_and_restarts():
    vec = gymnasium.make_vec("genie/World-v0", num_envs=2, world=tiny_world(), max_episode_steps=2)
    vec.reset(seed=0)
    assert [vec.step(np.array([0, 1]))[3].tolist() for _ in range(2)] == [[False, False], [True, True]]
    _, _, _, truncated, info = vec.step(np.array([0, 1]))
    assert not truncated.any() and "world_seed" in info
    assert vec.step(np.array([0, 1]))[3].tolist() == [False, False]


def test_vector_env_refuses_what_a_shared_batch_cannot_do():
    calls = iter([True, False, False])
    vec = WorldVectorEnv(3, tiny_world(), done_fn=lambda obs: next(calls))
    vec.reset(seed=0)
    with pytest.raises(GenieError, match=r"ended sub-envs \[0\] but not the others"):
        vec.step(np.zeros(3, np.int64))
    with pytest.raises(GenieError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.array([True, False, False])})
    with pytest.raises(GenieError, match="not in MultiDiscrete"):
        vec.step(np.array([0, 4, 0]))
    with pytest.raises(GenieError, match="not in MultiDiscrete"):
        vec.step(np.array([0.0, 1.0, 0.0]))
    with pytest.raises(GenieError, match="3 ints"):
        vec.reset(seed=[1, 2])


def test_vector_env_renders_rgb_array():
    vec = WorldVectorEnv(2, tiny_world(), render_mode="rgb_array")
    obs, _ = vec.reset(seed=0)
    assert np.array_equal(vec.render(), obs)
