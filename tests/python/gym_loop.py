"""A plain Gymnasium loop, the reference for qnet's bridge: `n` envs of ENV_ID, env i reset
once with SEEDS[i] and then without a seed whenever its episode ends, stepped for STEPS steps
with action (t * 7 + i * 3) % n_actions at step t. Prints one JSON object a step: every env's
observation after the step (the first of the new episode where one ended), reward,
terminated, truncated and the observation that ended an episode (null where none did).

    python gym_loop.py ENV_ID STEPS SEED [SEED ...]
"""
import json
import sys

import gymnasium as gym
import numpy as np

env_id, steps, seeds = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]
envs = [gym.make(env_id) for _ in seeds]
obs = [np.asarray(env.reset(seed=seed)[0], np.float32) for env, seed in zip(envs, seeds)]
print(json.dumps({"obs": [o.tolist() for o in obs]}))
n_actions = int(envs[0].action_space.n)
for t in range(steps):
    record = {"obs": [], "reward": [], "terminated": [], "truncated": [], "final": []}
    for i, env in enumerate(envs):
        o, r, te, tr, _ = env.step((t * 7 + i * 3) % n_actions)
        final = None
        if te or tr:
            final = np.asarray(o, np.float32).tolist()
            o, _ = env.reset()
        record["obs"].append(np.asarray(o, np.float32).tolist())
        record["reward"].append(float(r))
        record["terminated"].append(bool(te))
        record["truncated"].append(bool(tr))
        record["final"].append(final)
    print(json.dumps(record))
