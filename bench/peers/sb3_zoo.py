"""Stable-Baselines3's DQN with rl-baselines3-zoo's tuned settings for CartPole-v1, Acrobot-v1 or
MountainCar-v0: the peer of `qnet bench solve --config configs/sb3-zoo.yaml` (and
configs/sb3-zoo-acrobot.yaml, configs/sb3-zoo-mountaincar.yaml).

The settings are the zoo's hyperparams/dqn.yml entries on SB3's defaults, the same values the
qnet configs hold (their headers list them): for CartPole-v1, 50,000 env steps, learning rate
2.3e-3, minibatches of 64, a 100,000-transition buffer, learning starts 1,000, gamma 0.99,
target copied every 10 steps, 128 gradient steps every 256 env steps, epsilon 1 -> 0.04 over
the first 16% of training, a 256-256 ReLU network, Huber loss, gradient norm clipped at 10.

As in the qnet configs, a greedy 20-episode evaluation runs every 2,500 env steps ("solved" =
the first whose mean reaches the env's threshold: 475, -100, -110) and a greedy 100-episode
evaluation at the end. Evaluation time is left out of the training time here (qnet's figure
keeps its evaluations in), which favours SB3.

Usage: python sb3_zoo.py SEED [--env ENV_ID] [--threads N]
       (default CartPole-v1; threads: torch's own count)
Prints one JSON line: env, env_steps_per_s, updates_per_s, train_s, solved_at_step,
solved_at_seconds (training seconds to the first solved evaluation), final_mean.
"""
import argparse
import json
import platform
import time

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback

EVAL_EVERY, EVAL_EPISODES = 2_500, 20

# The zoo's dqn.yml entry of each env, as SB3 DQN arguments, with its budget and Gymnasium's
# reward threshold.
ZOO = {
    "CartPole-v1": (50_000, 475.0, dict(
        learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000,
        gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=0.16, exploration_final_eps=0.04)),
    "Acrobot-v1": (100_000, -100.0, dict(
        learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0,
        gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
        exploration_fraction=0.12, exploration_final_eps=0.1)),
    "MountainCar-v0": (120_000, -110.0, dict(
        learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1_000,
        gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8,
        exploration_fraction=0.2, exploration_final_eps=0.07)),
}


def greedy_returns(model: DQN, env_id: str, episodes: int, first_seed: int) -> list[float]:
    env = gym.make(env_id)
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=first_seed + k)
        done, episode_return = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    return returns


class PeriodicEval(BaseCallback):
    """Greedy evaluations every EVAL_EVERY env steps, their time kept apart."""

    def __init__(self, env_id: str, threshold: float) -> None:
        super().__init__()
        self.env_id, self.threshold = env_id, threshold
        self.eval_seconds = 0.0
        self.started = 0.0
        self.solved_at_step = None
        self.solved_at_seconds = None

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()

    def train_seconds(self) -> float:
        """Seconds since training started, less those spent in evaluations."""
        return time.perf_counter() - self.started - self.eval_seconds

    def _on_step(self) -> bool:
        if self.num_timesteps % EVAL_EVERY == 0:
            start = time.perf_counter()
            mean = float(np.mean(greedy_returns(self.model, self.env_id, EVAL_EPISODES, 10_000 + self.num_timesteps)))
            self.eval_seconds += time.perf_counter() - start
            if mean >= self.threshold and self.solved_at_step is None:
                self.solved_at_step = self.num_timesteps
                self.solved_at_seconds = round(self.train_seconds(), 2)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("--env", choices=sorted(ZOO), default="CartPole-v1")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    total_steps, threshold, settings = ZOO[args.env]
    model = DQN(
        "MlpPolicy", gym.make(args.env), policy_kwargs={"net_arch": [256, 256]}, seed=args.seed,
        device="cpu", verbose=0, **settings,
    )
    probe = PeriodicEval(args.env, threshold)
    model.learn(total_timesteps=total_steps, callback=probe)
    train_s = probe.train_seconds()
    final = greedy_returns(model, args.env, 100, 1_000_000)
    print(json.dumps({
        "env": args.env, "seed": args.seed, "threads": torch.get_num_threads(), "train_s": round(train_s, 2),
        "env_steps": model.num_timesteps, "env_steps_per_s": round(model.num_timesteps / train_s, 1),
        "updates": model._n_updates, "updates_per_s": round(model._n_updates / train_s, 1),
        "solved_at_step": probe.solved_at_step,
        "solved_at_seconds": probe.solved_at_seconds, "final_mean": round(float(np.mean(final)), 1),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__,
                     "gymnasium": gym.__version__},
    }), flush=True)


if __name__ == "__main__":
    main()
