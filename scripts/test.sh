#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors), and all tests,
# including the Gymnasium parity fixture, the resume test and the PyTorch interop checks
# (which use .venv/bin/python; run ./scripts/setup.sh first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
