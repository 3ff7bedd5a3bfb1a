#!/usr/bin/env python3
"""Inspect a trained qnet Q-network with plain PyTorch (no qnet code needed).

    python examples/analyze.py [RUN_DIR]        # default: models/cartpole-dqn

Loads RUN_DIR/model.pt (torch.jit.load) and RUN_DIR/model.safetensors into the plain PyTorch
module the embedded metadata describes (an nn.Sequential, or DuelingQNetwork below for a
dueling head), checks that they agree, prints the metadata, and plots each action's Q-value
(and, with two actions, their difference) and the greedy action over a plane of the environment's states into RUN_DIR/q_values.png when
matplotlib is installed. The plane (SLICES below) is, for CartPole-v1, pole angle x pole
angular velocity with the cart at rest in the middle; for Acrobot-v1, the first joint's angle
x its angular velocity with the second joint straight and still; for MountainCar-v0, position
x velocity (its whole state space).

torch.jit.load runs the code model.pt holds: use this on runs you trust (docs/security.md).

In a notebook:

    from analyze import load_run, q_grid, plot_q_values
    run = load_run("models/cartpole-dqn")
    xs, ys, q = q_grid(run.module, run.env_id)
    plot_q_values(xs, ys, q, run.env_id)
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

METADATA_FILE = "qnet.json"
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass
class Slice:
    """A plane of an environment's states: two axes and the observation at each point."""

    x_label: str
    x_range: tuple
    y_label: str
    y_range: tuple
    observe: object  # (x, y) tensors -> observations [..., obs_dim]
    actions: tuple  # the actions' names


def _cartpole_obs(x, y):
    zero = torch.zeros_like(x)
    return torch.stack([zero, zero, x, y], dim=-1)


def _acrobot_obs(x, y):
    zero = torch.zeros_like(x)
    return torch.stack([x.cos(), x.sin(), zero + 1.0, zero, y, zero], dim=-1)


SLICES = {
    # CartPole-v1 ends an episode when the pole leans more than 12 degrees.
    "CartPole-v1": Slice("pole angle (rad)", (-12 * torch.pi / 180, 12 * torch.pi / 180),
                         "pole angular velocity (rad/s)", (-2.0, 2.0), _cartpole_obs,
                         ("left", "right")),
    # Acrobot-v1 bounds the first joint's angular velocity at 4 pi.
    "Acrobot-v1": Slice("first joint's angle (rad)", (-torch.pi, torch.pi),
                        "its angular velocity (rad/s)", (-4 * torch.pi, 4 * torch.pi),
                        _acrobot_obs, ("torque -1", "torque 0", "torque +1")),
    # MountainCar-v0's position and velocity bounds.
    "MountainCar-v0": Slice("position", (-1.2, 0.6), "velocity", (-0.07, 0.07),
                            lambda x, y: torch.stack([x, y], dim=-1),
                            ("push left", "no push", "push right")),
}


@dataclass
class Run:
    """A run directory's exported Q-network."""

    metadata: dict  # string -> string, as embedded by qnet
    torchscript: torch.jit.ScriptModule  # model.pt
    module: nn.Module  # model.safetensors loaded into a plain PyTorch module

    @property
    def env_id(self):
        """The environment the model was trained on (CartPole-v1 for files that do not say)."""
        return self.metadata.get("env_id", "CartPole-v1")


def build_sequential(sizes, activation):
    """nn.Sequential(Linear, act, ..., Linear) for layer widths [obs_dim, hidden..., n_actions]."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class DuelingQNetwork(nn.Module):
    """A dueling Q-network (Wang et al., 2016): Q = V + A - mean(A) on a shared trunk."""

    def __init__(self, sizes, activation):
        super().__init__()
        layers = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        self.trunk = nn.Sequential(*layers)
        self.value = nn.Linear(sizes[-2], 1)
        self.advantage = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x):
        h = self.trunk(x)
        a = self.advantage(h)
        return self.value(h) + a - a.mean(dim=1, keepdim=True)


def load_run(run_dir, atol=1e-6):
    """Loads model.pt and model.safetensors of `run_dir` and checks they compute the same."""
    run_dir = Path(run_dir)
    pt_path, st_path = run_dir / "model.pt", run_dir / "model.safetensors"
    extra = {METADATA_FILE: ""}
    torchscript = torch.jit.load(str(pt_path), map_location="cpu", _extra_files=extra)
    torchscript.eval()
    meta_pt = json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
    with safe_open(str(st_path), framework="pt") as f:
        meta_st = f.metadata() or {}
    if meta_pt != meta_st:
        print(f"warning: metadata of {pt_path} and {st_path} differ", file=sys.stderr)
    meta = meta_st or meta_pt

    activation = meta.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{st_path}: unknown activation {activation!r}")
    state = load_file(str(st_path))
    if {"obs_dim", "hidden", "n_actions"} <= meta.keys():
        sizes = [int(meta["obs_dim"]), *json.loads(meta["hidden"]), int(meta["n_actions"])]
    else:  # no metadata: Linear layer i is "<2i>.weight" of shape [out, in]
        shapes = [state[f"{2 * i}.weight"].shape for i in range(len(state) // 2)]
        sizes = [shapes[0][1]] + [s[0] for s in shapes]
    head = meta.get("head", "plain")
    if head == "dueling":
        module = DuelingQNetwork(sizes, activation)
    elif head == "plain":
        module = build_sequential(sizes, activation)
    else:
        raise ValueError(f"{st_path}: unknown head {head!r}")
    module.load_state_dict(state)
    module.eval()

    probe = torch.randn(64, sizes[0])
    with torch.no_grad():
        err = (torchscript(probe) - module(probe)).abs().max().item()
    if err > atol:
        raise ValueError(f"{pt_path} and {st_path} disagree: max |dQ| = {err:.3g}")
    return Run(metadata=meta, torchscript=torchscript, module=module)


def q_grid(model, env_id="CartPole-v1", n=101):
    """Q-values over the plane SLICES[env_id] describes.

    Returns (xs [n], ys [n], q [n_ys, n_xs, n_actions]).
    """
    plane = SLICES[env_id]
    xs = torch.linspace(*plane.x_range, n)
    ys = torch.linspace(*plane.y_range, n)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    obs = plane.observe(x, y)
    with torch.no_grad():
        q = model(obs.reshape(n * n, -1)).reshape(n, n, -1)
    return xs, ys, q


def plot_q_values(xs, ys, q, env_id="CartPole-v1", path=None):
    """Heatmaps of each action's Q-value (with two actions, their difference too) and of the
    greedy action over SLICES[env_id].

    Saves to `path` when given; returns the figure, or None without matplotlib.
    """
    try:
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; skipping the plot (pip install matplotlib)")
        return None
    plane = SLICES[env_id]
    extent = [xs[0].item(), xs[-1].item(), ys[0].item(), ys[-1].item()]
    n_actions = q.shape[-1]
    greedy = ", ".join(f"{a} {name}" for a, name in enumerate(plane.actions))
    # title, values, colormap, (vmin, vmax) or None for auto
    panels = [(f"Q({plane.actions[a]})", q[..., a], "viridis", None) for a in range(n_actions)]
    if n_actions == 2:
        diff = q[..., 1] - q[..., 0]
        bound = diff.abs().max().item() or 1.0
        panels.append((f"Q({plane.actions[1]}) - Q({plane.actions[0]})", diff, "coolwarm", (-bound, bound)))
    panels.append((f"greedy action ({greedy})", q.argmax(dim=-1).float(), "coolwarm", (0.0, n_actions - 1.0)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), constrained_layout=True)
    fig.suptitle(env_id)
    for ax, (title, values, cmap, limits) in zip(axes, panels):
        vmin, vmax = limits or (None, None)
        image = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title)
        ax.set_xlabel(plane.x_label)
        ax.set_ylabel(plane.y_label)
        fig.colorbar(image, ax=ax)
    if path is not None:
        fig.savefig(path, dpi=120)
        print(f"wrote {path}")
    return fig


def print_metadata(meta):
    for key in sorted(meta):
        value = meta[key]
        if "\n" in value:
            print(f"{key}:")
            for line in value.splitlines():
                print(f"    {line}")
        else:
            print(f"{key}: {value}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="models/cartpole-dqn", help="directory holding model.pt and model.safetensors")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    try:
        run = load_run(run_dir)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        print(f"analyze: cannot load the Q-network of {run_dir}: {e}", file=sys.stderr)
        return 1
    print("model.pt and model.safetensors agree.")
    print_metadata(run.metadata)
    if run.env_id not in SLICES:
        print(f"analyze: {run_dir} was trained on {run.env_id!r}, which this script cannot plot", file=sys.stderr)
        return 1
    xs, ys, q = q_grid(run.module, run.env_id)
    actions = SLICES[run.env_id].actions
    shares = ", ".join(f"{name} {(q.argmax(dim=-1) == a).float().mean().item():.0%}" for a, name in enumerate(actions))
    print(f"over the grid: Q in [{q.min().item():.2f}, {q.max().item():.2f}]; greedy action: {shares} of states")
    plot_q_values(xs, ys, q, run.env_id, path=run_dir / "q_values.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
