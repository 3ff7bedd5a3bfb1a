#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy and rustdoc (warnings are errors), and all tests,
# including the Gymnasium parity fixture, the resume test and the PyTorch interop checks
# (which use .venv/bin/python; run ./scripts/setup.sh first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test --release
