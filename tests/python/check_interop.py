#!/usr/bin/env python3
"""Checks that qnet's exported Q-network opens in plain PyTorch, without any qnet code.

Usage: check_interop.py MODEL_PT MODEL_SAFETENSORS EXPECTED_JSON

EXPECTED_JSON: {"hidden": [32, 32], "activation": "relu",
                "states": [[4 floats], ...], "q_values": [[n_actions floats], ...]}

Checks that
- MODEL_PT opens with torch.jit.load, its state_dict keys are exactly those of the matching
  nn.Sequential (0.weight, 0.bias, 2.weight, ...), and it carries the extra file qnet.json;
- nn.Sequential loads the state_dict of MODEL_PT and, separately, the tensors of
  MODEL_SAFETENSORS (safetensors.torch.load_file), which carries __metadata__;
- the TorchScript module and both nn.Sequential copies reproduce q_values to 1e-6 (absolute).
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

    reference = build_sequential(sizes, expected["activation"])
    want_keys = list(reference.state_dict().keys())
    got_keys = list(module.state_dict().keys())
    if sorted(got_keys) != sorted(want_keys):
        raise CheckFailed(f"{model_pt}: state_dict keys {got_keys}, expected {want_keys}")

    from_pt = build_sequential(sizes, expected["activation"])
    from_pt.load_state_dict(module.state_dict())
    from_st = build_sequential(sizes, expected["activation"])
    from_st.load_state_dict(load_file(model_safetensors))

    with safe_open(model_safetensors, framework="pt") as f:
        meta_st = f.metadata()
    if not meta_st:
        raise CheckFailed(f"{model_safetensors} has no __metadata__")
    if meta_st != meta_pt:
        raise CheckFailed(f"metadata differs: {METADATA_FILE} in {model_pt} has {meta_pt}, {model_safetensors} has {meta_st}")

    with torch.no_grad():
        check_close(f"torch.jit.load({model_pt})", module(states), q_expected)
        check_close("nn.Sequential with the state_dict of model.pt", from_pt(states), q_expected)
        check_close("nn.Sequential with model.safetensors", from_st(states), q_expected)
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
    print(f"check_interop: OK: TorchScript, state_dict and safetensors agree; metadata keys {sorted(meta)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
