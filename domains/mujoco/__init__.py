"""The ``mujoco`` domain: reinforcement learning on MuJoCo v5 tasks with stable-baselines3 (SPEC §2.3)."""

from domains.mujoco.domain import MujocoConfig, MujocoDomain

__all__ = ["MujocoDomain", "MujocoConfig"]
