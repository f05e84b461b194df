"""Stable-Baselines3 inside a world: the SB3 VecEnv adapter over the batched WorldVectorEnv, and PPO."""

import warnings

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO  # the dev extra
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecMonitor
from test_envs import random_prompts, tiny_world

from envs.sb3 import SB3VecEnv
from envs.vector_env import WorldVectorEnv
from envs.world_env import WorldEnv
from genie.errors import GenieError

torch.set_num_threads(1)


def brightness(prev, action, obs) -> float:
    return float(obs.mean()) / 255.0


def test_single_env_passes_sb3s_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any complaint from SB3's checker fails the test
        check_env(WorldEnv(tiny_world(), prompts=random_prompts(), reward_fn=brightness), warn=True)


def test_all_worlds_step_in_one_batched_call_with_the_vector_envs_frames(monkeypatch):
    world = tiny_world()
    batches = []
    step = world.step
    monkeypatch.setattr(world, "step", lambda actions: batches.append(len(actions)) or step(actions))
    venv = SB3VecEnv.make(4, world=world, prompts=random_prompts(), reward_fn=brightness)
    assert venv.observation_space.shape == (64, 64, 3) and venv.action_space.n == 4
    venv.seed(10)
    obs = venv.reset()
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    assert [i["world_seed"] for i in venv.reset_infos] and venv.reset_infos[0].keys() == {"prompt_index", "world_seed"}
    actions = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 1, 1]])
    frames = [obs] + [venv.step(a)[0] for a in actions]
    assert batches == [4, 4, 4]
    native = WorldVectorEnv(4, tiny_world(), prompts=random_prompts())
    expected = [native.reset(seed=10)[0]] + [native.step(a)[0] for a in actions]  # sub-env i: seed 10 + i
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected))
    obs, rewards, dones, infos = venv.step(actions[0])
    assert rewards.dtype == np.float32 and not dones.any()
    assert rewards == pytest.approx(obs.mean(axis=(1, 2, 3)) / 255, rel=1e-5)  # reward_fn per sub-env
    assert all(info == {"TimeLimit.truncated": False} for info in infos)


def test_episode_end_returns_the_next_first_frame_and_the_terminal_observation():
    venv = SB3VecEnv.make(3, world=tiny_world(), prompts=random_prompts(), max_episode_steps=2)
    venv.seed(0)
    venv.reset()
    venv.step(np.zeros(3, np.int64))
    obs, _, dones, infos = venv.step(np.zeros(3, np.int64))  # the time limit: the episodes end here
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    native = WorldVectorEnv(3, tiny_world(), prompts=random_prompts(), max_episode_steps=2)
    native.reset(seed=0)
    native.step(np.zeros(3, np.int64))
    terminal = native.step(np.zeros(3, np.int64))[0]
    restart, *_, info = native.step(np.zeros(3, np.int64))  # NEXT_STEP autoreset: the next episode's first frames
    assert all(np.array_equal(infos[i]["terminal_observation"], terminal[i]) for i in range(3))
    assert np.array_equal(obs, restart) and not np.array_equal(obs, terminal)
    assert [i["world_seed"] for i in venv.reset_infos] == info["world_seed"].tolist()
    obs, _, dones, infos = venv.step(np.zeros(3, np.int64))
    assert not dones.any() and "terminal_observation" not in infos[0]


def test_terminated_is_not_marked_as_truncated():
    venv = SB3VecEnv.make(2, world=tiny_world(), done_fn=lambda obs: True)
    venv.reset()
    _, _, dones, infos = venv.step(np.zeros(2, np.int64))
    assert dones.all() and not any(info["TimeLimit.truncated"] for info in infos)
    assert all(info["terminal_observation"].shape == (64, 64, 3) for info in infos)


def test_the_adapter_refuses_what_one_batch_cannot_do():
    venv = SB3VecEnv.make(2, world=tiny_world())
    with pytest.raises(GenieError, match="some sub-envs"):
        venv.set_attr("reward_fn", None, indices=[0])
    venv.set_attr("reward_fn", brightness)
    assert venv.get_attr("reward_fn", indices=[1]) == [brightness]
    with pytest.raises(GenieError, match="WorldVectorEnv"):
        SB3VecEnv(WorldEnv(tiny_world()))


def test_ppo_learns_inside_the_world_through_the_adapter():
    venv = VecMonitor(SB3VecEnv.make(4, world=tiny_world(), prompts=random_prompts(), reward_fn=brightness,
                                     max_episode_steps=16))
    model = PPO("CnnPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu",
                policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=32)))
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert len(model.ep_info_buffer) >= 4  # 16-step episodes ended and were counted by VecMonitor
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (4,) and set(action.tolist()) <= {0, 1, 2, 3}
