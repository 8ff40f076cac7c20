#!/usr/bin/env bash
# ./scripts/bench.sh NAME — set up like test.sh, run scripts/bench/NAME; its last line is JSON.
source "$(dirname "$0")/lib/setup-env.sh"
name="${1:?usage: scripts/bench.sh NAME  (one of: $(ls "$ROOT/scripts/bench" | tr '\n' ' '))}"
shift
bench="$ROOT/scripts/bench/$name"
[ -e "$bench" ] || { echo "bench.sh: no benchmark '$name' in scripts/bench/" >&2; exit 2; }
ensure_apt
ensure_venv "all,test"
ensure_camera_model
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$bench" "$@"
