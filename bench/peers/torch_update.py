"""Microseconds per DQN gradient update in eager PyTorch on the CPU, the peer of
`qnet bench throughput`'s update figure.

One update, as qnet's: sample a minibatch uniformly from a full replay buffer (50,000 rows held
as tensors), the online network's Q(s, a), the target network's max_a' Q(s', a') under
no_grad, the one-step TD target r + gamma * max * (1 - terminated), the loss (MSE, or Huber =
smooth L1 with delta 1 as SB3), zero_grad, backward, Adam step. No Double DQN, no gradient
clipping, a plain 4-H-H-2 ReLU network. Each Adam variant PyTorch offers on the CPU (the
default for-loop, foreach, fused) is timed: the median of five runs of 2,000 updates after 200
warm-up updates; the fastest variant is the peer's figure.

Usage: python torch_update.py --hidden 32 --batch 64 --loss mse [--threads 1]
Prints one JSON line: {"us_per_update": best median, "by_adam": {...}, ...}
"""
import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CAPACITY, GAMMA = 50_000, 0.99


def network(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 2))


def time_updates(hidden: int, batch: int, loss_name: str, adam_kwargs: dict) -> float:
    torch.manual_seed(0)
    online, target = network(hidden), network(hidden)
    target.load_state_dict(online.state_dict())
    optimizer = torch.optim.Adam(online.parameters(), lr=1e-3, **adam_kwargs)
    loss_fn = F.mse_loss if loss_name == "mse" else F.smooth_l1_loss
    obs, next_obs = torch.randn(CAPACITY, 4), torch.randn(CAPACITY, 4)
    actions = torch.randint(0, 2, (CAPACITY, 1))
    rewards = torch.ones(CAPACITY)
    terminated = (torch.rand(CAPACITY) < 0.05).float()

    def update() -> None:
        idx = torch.randint(0, CAPACITY, (batch,))
        with torch.no_grad():
            max_next = target(next_obs[idx]).max(dim=1).values
            td_target = rewards[idx] + GAMMA * max_next * (1.0 - terminated[idx])
        q_taken = online(obs[idx]).gather(1, actions[idx]).squeeze(1)
        loss = loss_fn(q_taken, td_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(200):
        update()
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(2_000):
            update()
        runs.append((time.perf_counter() - start) / 2_000 * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--loss", choices=["mse", "huber"], required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    by_adam = {}
    for name, kwargs in (("default", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        try:
            by_adam[name] = round(time_updates(args.hidden, args.batch, args.loss, kwargs), 1)
        except (RuntimeError, ValueError) as err:  # a variant this build does not offer
            by_adam[name] = f"unavailable: {err}"
    timed = [v for v in by_adam.values() if isinstance(v, float)]
    print(json.dumps({
        "us_per_update": min(timed), "by_adam": by_adam, "hidden": args.hidden,
        "batch": args.batch, "loss": args.loss, "threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }), flush=True)


if __name__ == "__main__":
    main()
