"""Stable-Baselines3's DQN with rl-baselines3-zoo's tuned CartPole-v1 settings, the peer of
`qnet bench solve --config configs/sb3-zoo.yaml`.

The settings are the zoo's hyperparams/dqn.yml entry for CartPole-v1 on SB3's defaults, the
same values configs/sb3-zoo.yaml holds: 50,000 env steps, learning rate 2.3e-3, minibatches of
64, a 100,000-transition buffer, learning starts 1,000, gamma 0.99, target copied every 10
steps, 128 gradient steps every 256 env steps, epsilon 1 -> 0.04 over the first 16% of
training, a 256-256 ReLU network, Huber loss, gradient norm clipped at 10.

As in the qnet config, a greedy 20-episode evaluation runs every 2,500 env steps ("solved" =
the first whose mean is >= 475) and a greedy 100-episode evaluation at the end. Evaluation
time is left out of the training time here (qnet's figure keeps its evaluations in), which
favours SB3.

Usage: python sb3_zoo.py SEED [--threads N]   (default: torch's own thread count)
Prints one JSON line: env_steps_per_s, updates_per_s, train_s, solved_at_step, final_mean.
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

TOTAL_STEPS, EVAL_EVERY, EVAL_EPISODES, SOLVED = 50_000, 2_500, 20, 475.0


def greedy_returns(model: DQN, episodes: int, first_seed: int) -> list[float]:
    env = gym.make("CartPole-v1")
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

    def __init__(self) -> None:
        super().__init__()
        self.eval_seconds = 0.0
        self.solved_at_step = None

    def _on_step(self) -> bool:
        if self.num_timesteps % EVAL_EVERY == 0:
            start = time.perf_counter()
            mean = float(np.mean(greedy_returns(self.model, EVAL_EPISODES, 10_000 + self.num_timesteps)))
            self.eval_seconds += time.perf_counter() - start
            if mean >= SOLVED and self.solved_at_step is None:
                self.solved_at_step = self.num_timesteps
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = DQN(
        "MlpPolicy", gym.make("CartPole-v1"), learning_rate=2.3e-3, batch_size=64,
        buffer_size=100_000, learning_starts=1_000, gamma=0.99, target_update_interval=10,
        train_freq=256, gradient_steps=128, exploration_fraction=0.16,
        exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]}, seed=args.seed,
        device="cpu", verbose=0,
    )
    probe = PeriodicEval()
    start = time.perf_counter()
    model.learn(total_timesteps=TOTAL_STEPS, callback=probe)
    train_s = time.perf_counter() - start - probe.eval_seconds
    final = greedy_returns(model, 100, 1_000_000)
    print(json.dumps({
        "seed": args.seed, "threads": torch.get_num_threads(), "train_s": round(train_s, 2),
        "env_steps": model.num_timesteps, "env_steps_per_s": round(model.num_timesteps / train_s, 1),
        "updates": model._n_updates, "updates_per_s": round(model._n_updates / train_s, 1),
        "solved_at_step": probe.solved_at_step, "final_mean": round(float(np.mean(final)), 1),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__,
                     "gymnasium": gym.__version__},
    }), flush=True)


if __name__ == "__main__":
    main()
