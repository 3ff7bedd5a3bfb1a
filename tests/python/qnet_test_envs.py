"""Gymnasium environments for qnet's bridge tests, registered on import: one a user might
write (Match), and ones that misbehave in each way the bridge must survive.

    qnet train --set env.id=gym:qnet_test_envs:QnetTest/Match-v0   (with this folder on
    PYTHONPATH)
"""
import os
import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Match(gym.Env):
    """Each step shows +1 or -1; action 1 matches +1 and action 0 matches -1, for a reward
    of 1 (0 otherwise). Episodes last 20 steps; a perfect policy returns 20."""

    def __init__(self, fail_at=None, fail_how=None):
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.fail_at, self.fail_how = fail_at, fail_how
        self.t = 0

    def _obs(self):
        return np.array([self.sign], dtype=np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.sign = float(self.np_random.choice([-1.0, 1.0]))
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        if self.fail_at is not None and self.t == self.fail_at:
            if self.fail_how == "raise":
                raise ValueError(f"boom at step {self.t}")
            if self.fail_how == "die":
                os._exit(3)
            if self.fail_how == "hang":
                time.sleep(3600)
        reward = 1.0 if (action == 1) == (self.sign > 0) else 0.0
        self.sign = float(self.np_random.choice([-1.0, 1.0]))
        return self._obs(), reward, self.t >= 20, False, {}


class DictObs(Match):
    """Match with a Dict observation space, which qnet refuses."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"sign": spaces.Box(-1.0, 1.0, shape=(1,))})


gym.register("QnetTest/Match-v0", entry_point=Match, max_episode_steps=50, reward_threshold=19.0)
gym.register("QnetTest/Raises-v0", entry_point=Match, kwargs={"fail_at": 5, "fail_how": "raise"},
             max_episode_steps=50)
gym.register("QnetTest/Dies-v0", entry_point=Match, kwargs={"fail_at": 3, "fail_how": "die"},
             max_episode_steps=50)
gym.register("QnetTest/Hangs-v0", entry_point=Match, kwargs={"fail_at": 3, "fail_how": "hang"},
             max_episode_steps=50)
gym.register("QnetTest/DictObs-v0", entry_point=DictObs, max_episode_steps=50)
gym.register("QnetTest/NoLimit-v0", entry_point=Match)
