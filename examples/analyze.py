#!/usr/bin/env python3
"""Inspect a trained qnet CartPole Q-network with plain PyTorch (no qnet code needed).

    python examples/analyze.py [RUN_DIR]        # default: models/cartpole-dqn

Loads RUN_DIR/model.pt (torch.jit.load) and RUN_DIR/model.safetensors into the plain PyTorch
module the embedded metadata describes (an nn.Sequential, or DuelingQNetwork below for a
dueling head), checks that they agree, prints the metadata, and plots
Q(left), Q(right), Q(right) - Q(left) and the greedy action over pole angle x pole angular
velocity (cart position and velocity 0) into RUN_DIR/q_values.png when matplotlib is
installed.

In a notebook:

    from analyze import load_run, q_grid, plot_q_values
    run = load_run("models/cartpole-dqn")
    angles, velocities, q = q_grid(run.module)
    plot_q_values(angles, velocities, q)
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
# CartPole-v1 ends an episode when the pole leans more than 12 degrees.
ANGLE_LIMIT = 12 * 2 * torch.pi / 360
ACTION_NAMES = ("left", "right")


@dataclass
class Run:
    """A run directory's exported Q-network."""

    metadata: dict  # string -> string, as embedded by qnet
    torchscript: torch.jit.ScriptModule  # model.pt
    module: nn.Module  # model.safetensors loaded into a plain PyTorch module


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


def q_grid(model, n=101, angle_limit=ANGLE_LIMIT, velocity_limit=2.0):
    """Q-values over pole angle (x) and angular velocity (y), cart at rest in the middle.

    Returns (angles [n], velocities [n], q [n_velocities, n_angles, n_actions]).
    """
    angles = torch.linspace(-angle_limit, angle_limit, n)
    velocities = torch.linspace(-velocity_limit, velocity_limit, n)
    vel, ang = torch.meshgrid(velocities, angles, indexing="ij")
    obs = torch.stack([torch.zeros_like(ang), torch.zeros_like(ang), ang, vel], dim=-1)
    with torch.no_grad():
        q = model(obs.reshape(-1, 4)).reshape(n, n, -1)
    return angles, velocities, q


def plot_q_values(angles, velocities, q, path=None):
    """Heatmaps of Q(left), Q(right), Q(right) - Q(left) and the greedy action.

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
    extent = [angles[0].item(), angles[-1].item(), velocities[0].item(), velocities[-1].item()]
    diff = q[..., 1] - q[..., 0]
    bound = diff.abs().max().item() or 1.0
    panels = [  # title, values, colormap, (vmin, vmax) or None for auto
        (f"Q({ACTION_NAMES[0]})", q[..., 0], "viridis", None),
        (f"Q({ACTION_NAMES[1]})", q[..., 1], "viridis", None),
        ("Q(right) - Q(left)", diff, "coolwarm", (-bound, bound)),
        ("greedy action (0 left, 1 right)", q.argmax(dim=-1).float(), "coolwarm", (0.0, 1.0)),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), constrained_layout=True)
    for ax, (title, values, cmap, limits) in zip(axes, panels):
        vmin, vmax = limits or (None, None)
        image = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title)
        ax.set_xlabel("pole angle (rad)")
        ax.set_ylabel("pole angular velocity (rad/s)")
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
    angles, velocities, q = q_grid(run.module)
    greedy_right = (q.argmax(dim=-1) == 1).float().mean().item()
    print(f"over the grid: Q in [{q.min().item():.2f}, {q.max().item():.2f}], greedy action right in {greedy_right:.0%} of states")
    plot_q_values(angles, velocities, q, path=run_dir / "q_values.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
