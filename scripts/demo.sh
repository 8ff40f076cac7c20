#!/usr/bin/env bash
# Quick start 1: run the agent against a local simulated commune and show what the COC receives.
#   ./scripts/demo.sh              until Ctrl-C
#   ./scripts/demo.sh --seconds 60 stop by itself
# Installs what is missing (Debian packages, a venv in .venv); needs root or sudo for apt and the
# demo's network namespaces.
source "$(dirname "$0")/lib/setup-env.sh"
ensure_apt
ensure_venv "all,test"
ensure_camera_model
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.demo.run "$@"
