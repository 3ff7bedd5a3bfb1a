"""Gymnasium's step rate for one environment, the peer of qnet's Rust envs (benches/env.rs).

Two figures, each the median of three timed runs after a warm-up, random actions drawn
beforehand so that the loop times the env and not an RNG:
  scalar   gym.make(ENV_ID).step(a), reset when terminated or truncated; the same work as
           benches/env.rs's <env>_scalar/step_and_reset_on_done
  vec256   256 envs from gym.make_vec, counting every sub-env step; the peer of
           <env>_batched/256. CartPole-v1 has a numpy-batched CartPoleVectorEnv
           ("vector_entry_point"); Acrobot-v1 and MountainCar-v0 have none, so theirs is
           Gymnasium's default SyncVectorEnv (auto-reset inside either way).

Usage: python gym_steps.py [SCALAR_STEPS=300000] [ENV_ID=CartPole-v1] [VECTOR_STEPS=4000]
Prints one JSON line: {"env": ..., "scalar_steps_per_s": ..., "vec256_steps_per_s": ...,
"vectorization_mode": ..., "versions": {...}}
"""
import json
import platform
import statistics
import sys
import time

import gymnasium as gym
import numpy as np

RUNS = 3


def scalar_rate(env_id: str, steps: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, steps).tolist()
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


def vectorization_mode(env_id: str) -> str:
    return "vector_entry_point" if env_id.startswith("CartPole") else "sync"


def vector_rate(env_id: str, n_envs: int, vector_steps: int) -> float:
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=vectorization_mode(env_id))
    envs.reset(seed=0)
    n_actions = envs.single_action_space.n
    actions = np.random.default_rng(0).integers(0, n_actions, (vector_steps, n_envs))
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
    env_id = sys.argv[2] if len(sys.argv) > 2 else "CartPole-v1"
    vector_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 4_000
    scalar = statistics.median(scalar_rate(env_id, steps) for _ in range(RUNS))
    vec256 = statistics.median(vector_rate(env_id, 256, vector_steps) for _ in range(RUNS))
    print(json.dumps({
        "env": env_id,
        "scalar_steps_per_s": round(scalar),
        "vec256_steps_per_s": round(vec256),
        "vectorization_mode": vectorization_mode(env_id),
        "versions": {"python": platform.python_version(), "gymnasium": gym.__version__,
                     "numpy": np.__version__},
    }), flush=True)


if __name__ == "__main__":
    main()
