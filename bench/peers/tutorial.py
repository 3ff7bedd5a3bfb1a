"""The tutorial's Q-learning procedure, in eager PyTorch or in Keras, the peer of
`qnet train --config configs/tutorial.yaml`.

The procedure (configs/tutorial.yaml says the same in qnet's terms): each iteration collects
whole episodes with a constant epsilon of 0.3 into a fresh memory, then fits every transition
once, in order, one at a time: predict Q(s') unless the episode ended there, predict Q(s), set
Q(s)[a] to r + 0.95 max Q(s'), and take one optimizer step on that single sample (MSE, Adam at
1e-3 with epsilon 1e-7, a 4-32-32-2 ReLU network with Glorot-uniform weights and zero biases).
Collection stops as the tutorial's code counts: `timesteps_this_batch += len(memory)` after
every episode, until it exceeds 2,500 (qnet: --set train.tutorial.step_counting=code).

The figure is whole iterations (collecting and fitting) per replayed transition, as qnet's
summary.json gives it (train_seconds / gradient_updates).

Usage: python tutorial.py {torch,keras} [ITERATIONS=2] [SEED=0]
Prints one JSON line: us_per_transition, transitions, seconds, versions.
"""
import json
import os
import platform
import sys
import time

import gymnasium as gym
import numpy as np

EPSILON, GAMMA, MIN_TIMESTEPS = 0.3, 0.95, 2_500


def torch_model():
    """predict(x) -> Q-values and fit(x, y) -> one Adam step, in eager PyTorch."""
    import torch
    import torch.nn.functional as F

    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 2))
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)

    def predict(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    def fit(x, y):
        loss = F.mse_loss(net(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return predict, fit, {"torch": torch.__version__}


def keras_model():
    """The same network and calls through Keras, as the tutorial writes them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(2)])
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7))

    def predict(x):
        return model.predict(x, verbose=0)

    def fit(x, y):
        model.fit(x, y, epochs=1, verbose=0)

    return predict, fit, {"tensorflow": tf.__version__, "keras": keras.__version__}


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "torch"
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    rng = np.random.default_rng(seed)
    if backend == "torch":
        import torch
        torch.manual_seed(seed)
        predict, fit, versions = torch_model()
    else:
        import keras
        keras.utils.set_random_seed(seed)
        predict, fit, versions = keras_model()
    env = gym.make("CartPole-v1")
    env.action_space.seed(seed)
    transitions = 0
    start = time.perf_counter()
    for _ in range(iterations):
        memory, timesteps_this_batch = [], 0
        while timesteps_this_batch <= MIN_TIMESTEPS:
            state, _ = env.reset(seed=int(rng.integers(2**31)))
            done = False
            while not done:
                if rng.uniform() < EPSILON:
                    action = int(env.action_space.sample())
                else:
                    action = int(np.argmax(predict(state.reshape(1, 4))[0]))
                next_state, reward, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
                memory.append((state, action, float(reward), next_state, done))
                state = next_state
            timesteps_this_batch += len(memory)  # the tutorial's counter, as its code has it
        for state, action, reward, next_state, done in memory:
            target = reward if done else reward + GAMMA * float(np.max(predict(next_state.reshape(1, 4))[0]))
            q_values = predict(state.reshape(1, 4))
            q_values[0][action] = target
            fit(state.reshape(1, 4), q_values)
        transitions += len(memory)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "backend": backend, "iterations": iterations, "transitions": transitions,
        "seconds": round(seconds, 2), "us_per_transition": round(seconds / transitions * 1e6, 1),
        "versions": {"python": platform.python_version(), "gymnasium": gym.__version__, **versions},
    }), flush=True)


if __name__ == "__main__":
    main()
