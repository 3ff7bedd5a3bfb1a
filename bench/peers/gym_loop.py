"""Gymnasium's own loop over N envs of one environment in one process: the peer of qnet's
Gymnasium bridge (`qnet bench env --env gym:ENV_ID --envs N`), stepping the same envs the
same way.

Env i is made by gym.make(ENV_ID), reset once with seed i, then stepped with action
(t * 7 + i * 3) % n_actions at step t, reset (without a seed) when its episode ends, as the
bridge's worker does. After a warm-up, the loop is timed for about SECONDS seconds, three
times; the median rate is printed.

Usage: python gym_loop.py ENV_ID N [SECONDS=3]
Prints one JSON line: {"env": ..., "envs": N, "env_steps_per_s": ..., "versions": {...}}
"""
import json
import platform
import statistics
import sys
import time

import gymnasium as gym

if len(sys.argv) > 1 and ":" in sys.argv[1]:
    # `module:EnvId` as Gymnasium's make takes it (the module registers the env).
    __import__(sys.argv[1].split(":", 1)[0])

RUNS = 3


def run(envs, n_actions, steps, t0):
    for t in range(t0, t0 + steps):
        for i, env in enumerate(envs):
            _, _, terminated, truncated, _ = env.step((t * 7 + i * 3) % n_actions)
            if terminated or truncated:
                env.reset()
    return t0 + steps


def main():
    env_id, n = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    envs = [gym.make(env_id) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    n_actions = int(envs[0].action_space.n)
    # Warm-up, and a first guess of how many steps fill `seconds`.
    start = time.perf_counter()
    t = run(envs, n_actions, 100, 0)
    per_step = (time.perf_counter() - start) / 100
    steps = max(100, int(seconds / per_step))
    rates = []
    for _ in range(RUNS):
        start = time.perf_counter()
        t = run(envs, n_actions, steps, t)
        rates.append(steps * n / (time.perf_counter() - start))
    print(
        json.dumps(
            {
                "env": env_id,
                "envs": n,
                "env_steps_per_s": statistics.median(rates),
                "versions": {"python": platform.python_version(), "gymnasium": gym.__version__},
            }
        )
    )


if __name__ == "__main__":
    main()
