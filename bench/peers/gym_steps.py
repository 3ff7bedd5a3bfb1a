"""Gymnasium's CartPole-v1 step rate, the peer of qnet's Rust env (benches/env.rs).

Two figures, each the median of three timed runs after a warm-up, random actions drawn
beforehand so that the loop times the env and not an RNG:
  scalar   gym.make("CartPole-v1").step(a), reset when terminated or truncated; the same work
           as benches/env.rs's cartpole_scalar/step_and_reset_on_done
  vec256   gymnasium's numpy-batched CartPoleVectorEnv with 256 envs (auto-reset inside),
           counting every sub-env step; the peer of cartpole_batched/256

Usage: python gym_steps.py [SCALAR_STEPS=300000]
Prints one JSON line: {"scalar_steps_per_s": ..., "vec256_steps_per_s": ..., "versions": {...}}
"""
import json
import platform
import statistics
import sys
import time

import gymnasium as gym
import numpy as np

RUNS = 3


def scalar_rate(steps: int) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, steps).tolist()
    for a in actions[:1000]:  # warm-up
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_rate(n_envs: int, vector_steps: int) -> float:
    envs = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, (vector_steps, n_envs))
    for a in actions[:100]:  # warm-up
        envs.step(a)
    start = time.perf_counter()
    for a in actions:
        envs.step(a)
    elapsed = time.perf_counter() - start
    envs.close()
    return vector_steps * n_envs / elapsed


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    scalar = statistics.median(scalar_rate(steps) for _ in range(RUNS))
    vec256 = statistics.median(vector_rate(256, 4_000) for _ in range(RUNS))
    print(json.dumps({
        "scalar_steps_per_s": round(scalar),
        "vec256_steps_per_s": round(vec256),
        "versions": {"python": platform.python_version(), "gymnasium": gym.__version__,
                     "numpy": np.__version__},
    }), flush=True)


if __name__ == "__main__":
    main()
