"""Gymnasium envs over genie.World: `genie/World-v0` (WorldEnv; make_vec gives WorldVectorEnv).

    import envs, gymnasium
    env = gymnasium.make("genie/World-v0", world="bundles/world", prompts="data/coinrun-train")
    vec = gymnasium.make_vec("genie/World-v0", num_envs=64, world="bundles/world")
    sb3 = envs.SB3VecEnv.make(64, world="bundles/world")   # Stable-Baselines3's VecEnv (envs/sb3.py)

Importing this package only registers the id (no torch import); the classes load on first make.
"""

import gymnasium

ENV_ID = "genie/World-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="envs.world_env:WorldEnv",
        vector_entry_point="envs.vector_env:WorldVectorEnv",
        max_episode_steps=1000,
    )


def __getattr__(name: str):
    if name == "WorldEnv":
        from envs.world_env import WorldEnv

        return WorldEnv
    if name == "WorldVectorEnv":
        from envs.vector_env import WorldVectorEnv

        return WorldVectorEnv
    if name == "SB3VecEnv":  # needs stable-baselines3
        from envs.sb3 import SB3VecEnv

        return SB3VecEnv
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["ENV_ID", "SB3VecEnv", "WorldEnv", "WorldVectorEnv"]
