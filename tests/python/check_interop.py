#!/usr/bin/env python3
"""Checks that qnet's exported Q-network opens in plain PyTorch, without any qnet code.

Usage: check_interop.py MODEL_PT MODEL_SAFETENSORS EXPECTED_JSON

EXPECTED_JSON: {"hidden": [32, 32], "activation": "relu", "head": "plain" | "dueling",
                "states": [[4 floats], ...], "q_values": [[n_actions floats], ...],
                "gymnasium_episodes": 20, "gymnasium_threshold": 475}
                                            ("head" defaults to plain; the last two are optional)

The plain PyTorch modules a user writes without any qnet code:
- plain: nn.Sequential(Linear, act, ..., Linear), keys 0.weight, 0.bias, 2.weight, ...;
- dueling: DuelingQNetwork below, an nn.Sequential trunk (Linear, act per hidden layer) and two
  Linear streams, Q = V + A - mean(A), keys trunk.0.weight, ..., value.*, advantage.*.
Checks that
- MODEL_PT opens with torch.jit.load, its state_dict keys are exactly those of that module,
  and it carries the extra file qnet.json;
- the module loads the state_dict of MODEL_PT and, separately, the tensors of
  MODEL_SAFETENSORS (safetensors.torch.load_file), which carries __metadata__ (whose "head"
  says which module);
- the TorchScript module and both copies reproduce q_values to 1e-6 (absolute);
- with "gymnasium_episodes": N, the TorchScript module, acting greedily in Gymnasium's own env
  (the one its metadata's env_id names; seeds 0..N-1), averages at least "gymnasium_threshold".
Prints one OK line, or exits non-zero with the reason on stderr.
"""

import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

TOLERANCE = 1e-6
METADATA_FILE = "qnet.json"
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class CheckFailed(Exception):
    """A check did not pass; the message says which and why."""


def build_sequential(sizes, activation):
    """nn.Sequential(Linear, act, ..., Linear) for layer widths [in, hidden..., out]."""
    if activation not in ACTIVATIONS:
        raise CheckFailed(f"unknown activation {activation!r}, expected one of {sorted(ACTIVATIONS)}")
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class DuelingQNetwork(nn.Module):
    """What a dueling model.pt holds: Q = V + A - mean(A) on a shared trunk."""

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


def build_module(sizes, activation, head):
    """The plain PyTorch module for a qnet Q-network of these sizes and head."""
    if head == "plain":
        return build_sequential(sizes, activation)
    if head == "dueling":
        if activation not in ACTIVATIONS:
            raise CheckFailed(f"unknown activation {activation!r}, expected one of {sorted(ACTIVATIONS)}")
        return DuelingQNetwork(sizes, activation)
    raise CheckFailed(f"unknown head {head!r}, expected plain or dueling")


def play_gymnasium(module, env_id, episodes):
    """Mean return of greedy episodes of the module in Gymnasium's own env_id."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                action = int(module(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)).argmax(1))
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return sum(returns) / len(returns)


def check_close(name, got, expected):
    if got.shape != expected.shape:
        raise CheckFailed(f"{name}: Q-values have shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    err = (got - expected).abs().max().item()
    if not err <= TOLERANCE:
        raise CheckFailed(f"{name}: Q-values differ from qnet's by up to {err:.3g} (tolerance {TOLERANCE})")


def load_metadata_pt(model_pt):
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(model_pt, map_location="cpu", _extra_files=extra)
    if not extra[METADATA_FILE]:
        raise CheckFailed(f"{model_pt} has no (or an empty) extra file {METADATA_FILE}")
    meta = json.loads(extra[METADATA_FILE])
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckFailed(f"{model_pt}: {METADATA_FILE} is not a JSON object of strings")
    return module, meta


def check(model_pt, model_safetensors, expected_json):
    with open(expected_json, encoding="utf-8") as f:
        expected = json.load(f)
    states = torch.tensor(expected["states"], dtype=torch.float32)
    q_expected = torch.tensor(expected["q_values"], dtype=torch.float32)
    sizes = [states.shape[1], *expected["hidden"], q_expected.shape[1]]

    try:
        module, meta_pt = load_metadata_pt(model_pt)
    except RuntimeError as e:  # what torch raises for anything it cannot read
        raise CheckFailed(f"torch.jit.load({model_pt!r}) failed: {e}") from e
    module.eval()

    head = expected.get("head", "plain")
    reference = build_module(sizes, expected["activation"], head)
    want_keys = list(reference.state_dict().keys())
    got_keys = list(module.state_dict().keys())
    if sorted(got_keys) != sorted(want_keys):
        raise CheckFailed(f"{model_pt}: state_dict keys {got_keys}, expected {want_keys}")

    from_pt = build_module(sizes, expected["activation"], head)
    from_pt.load_state_dict(module.state_dict())
    from_st = build_module(sizes, expected["activation"], head)
    from_st.load_state_dict(load_file(model_safetensors))

    with safe_open(model_safetensors, framework="pt") as f:
        meta_st = f.metadata()
    if not meta_st:
        raise CheckFailed(f"{model_safetensors} has no __metadata__")
    if meta_st != meta_pt:
        raise CheckFailed(f"metadata differs: {METADATA_FILE} in {model_pt} has {meta_pt}, {model_safetensors} has {meta_st}")
    if meta_pt.get("head", head) != head:
        raise CheckFailed(f"{model_pt}: metadata says head {meta_pt.get('head')!r}, expected {head!r}")

    with torch.no_grad():
        check_close(f"torch.jit.load({model_pt})", module(states), q_expected)
        check_close(f"{type(from_pt).__name__} with the state_dict of model.pt", from_pt(states), q_expected)
        check_close(f"{type(from_st).__name__} with model.safetensors", from_st(states), q_expected)
    episodes = expected.get("gymnasium_episodes")
    if episodes:
        env_id = meta_pt.get("env_id", "CartPole-v1")
        threshold = expected["gymnasium_threshold"]
        mean = play_gymnasium(module, env_id, episodes)
        if mean < threshold:
            raise CheckFailed(f"{model_pt} averages {mean:.1f} over {episodes} Gymnasium {env_id} episodes, below {threshold}")
        meta_pt = dict(meta_pt, gymnasium_mean_return=f"{mean:.1f}")
    return meta_pt


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        meta = check(*argv[1:])
    except (CheckFailed, OSError, KeyError, ValueError, RuntimeError) as e:
        print(f"check_interop: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    played = f"; Gymnasium {meta.get('env_id')} mean return {meta['gymnasium_mean_return']}" if "gymnasium_mean_return" in meta else ""
    print(f"check_interop: OK: TorchScript, state_dict and safetensors agree; metadata keys {sorted(meta)}{played}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
