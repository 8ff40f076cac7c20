#!/usr/bin/env bash
# Install what the tests need (Debian packages, a venv) and run the whole suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/core -k spool
source "$(dirname "$0")/lib/setup-env.sh"
ensure_apt
ensure_venv "all,test"
ensure_camera_model
cd "$ROOT"
"$VENV/bin/ruff" check --quiet . || { echo "test.sh: ruff check failed" >&2; exit 1; }
set +e
# The suite mostly waits on real processes, so more workers than cores pay off; tests that share a fixed port
# or must not share cores carry @pytest.mark.xdist_group. TEST_WORKERS=0 runs everything in one process.
"$PY" -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-6}" --dist loadgroup "$@"
rc=$?
set -e
# pytest's 5 means "no tests collected": a filter that matched nothing is not a failure here
if [ "$rc" -eq 5 ]; then
  echo "test.sh: no tests matched" >&2
  exit 0
fi
exit "$rc"
