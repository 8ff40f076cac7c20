#!/usr/bin/env bash
# Install commune-agent on a Debian/Ubuntu box; safe to run again (upgrades in place).
#   sudo ./scripts/install.sh               apt packages, user, venv, config, systemd unit (enabled)
#   sudo ./scripts/install.sh --no-systemd  the same without the unit (containers, no systemd)
# Options: --skip-apt  (packages already there)   --extras LIST  (default: all; "" = core only)
#          --start     (start or restart the service at the end)
#          --wheels DIR (install offline from the wheels in DIR, the agent's own included)
# Paths can be moved with PREFIX, ETC_DIR and STATE_DIR in the environment.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/opt/commune-agent}"
ETC_DIR="${ETC_DIR:-/etc/commune-agent}"
STATE_DIR="${STATE_DIR:-/var/lib/commune-agent}"
UNIT_DIR="${UNIT_DIR:-/etc/systemd/system}"
USER_NAME=commune-agent
systemd=1 apt=1 start=0 extras=all wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-systemd) systemd=0 ;;
    --skip-apt) apt=0 ;;
    --start) start=1 ;;
    --extras) extras="$2"; shift ;;
    --wheels) wheels="$(cd "$2" && pwd)"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
say() { echo "install: $*"; }

if [ "$apt" -eq 1 ]; then
  source "$ROOT/scripts/lib/setup-env.sh"
  ensure_apt
fi

if ! getent passwd "$USER_NAME" >/dev/null; then
  say "creating system user $USER_NAME"
  useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
for g in dialout audio video; do
  getent group "$g" >/dev/null && usermod -a -G "$g" "$USER_NAME"
done

# A release is a venv of its own under $PREFIX/releases, built offline from its wheels (kept in it for the
# next self-update), then adopted: releases/current and releases/good point at it. Running this again
# builds a new release beside the running one and makes it current and good.
say "installing a release into $PREFIX/releases (extras: ${extras:-none})"
mkdir -p "$PREFIX/releases"
build="$PREFIX/releases/.tmp-install-$$"
trap 'rm -rf "$build"' EXIT
python3 -m venv "$build"
spec="$ROOT"
[ -n "$extras" ] && spec="$ROOT[$extras]"
if [ -n "$wheels" ]; then
  # offline: every wheel comes from DIR (the agent's own included)
  name="commune-agent"; [ -n "$extras" ] && name="commune-agent[$extras]"
  "$build/bin/pip" wheel -q --no-index --find-links "$wheels" -w "$build/wheels" "$name" pip
else
  "$build/bin/pip" install -q --upgrade pip >/dev/null
  "$build/bin/pip" wheel -q -w "$build/wheels" "$spec" pip
fi
"$build/bin/pip" install -q --no-index --find-links "$build/wheels" "$build"/wheels/*.whl
"$build/bin/python" -m agent release adopt --releases "$PREFIX/releases" --venv "$build"
trap - EXIT
install -m 0644 "$ROOT/agent/guard.py" "$PREFIX/guard.py"
# the old single venv becomes a link to the current release (paths in docs and scripts keep working)
if [ -d "$PREFIX/venv" ] && [ ! -L "$PREFIX/venv" ]; then rm -rf "$PREFIX/venv"; fi
ln -sfn releases/current "$PREFIX/venv.tmp" && mv -T "$PREFIX/venv.tmp" "$PREFIX/venv"
getent passwd "$USER_NAME" >/dev/null && chown -R "$USER_NAME:$USER_NAME" "$PREFIX/releases"
install -m 0644 "$ROOT/README.md" "$PREFIX/README.md"
case ",$extras," in
  *,all,*|*,camera,*) source "$ROOT/scripts/lib/setup-env.sh"; ensure_camera_model "$PREFIX/venv/bin/python" ;;
esac

# The agent writes agent.yaml and pushed/ here when the COC pushes a configuration (remote config), so the
# directory and the file are its own; the unit opens exactly this directory for writing (ReadWritePaths=).
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$ETC_DIR"
install -m 0640 -o root -g "$USER_NAME" "$ROOT/config/agent.example.yaml" "$ETC_DIR/agent.example.yaml"
if [ -e "$ETC_DIR/agent.yaml" ]; then
  chown "$USER_NAME:$USER_NAME" "$ETC_DIR/agent.yaml"
  say "keeping existing $ETC_DIR/agent.yaml (the new example is $ETC_DIR/agent.example.yaml)"
else
  # valid as written (site, coc, health; every family commented out): check-config passes before any edit
  install -m 0640 -o "$USER_NAME" -g "$USER_NAME" "$ROOT/config/agent.starter.yaml" "$ETC_DIR/agent.yaml"
  say "wrote a starter $ETC_DIR/agent.yaml: set site and coc (or: commune-agent init --force), then enable"
  say "  the families this office has from $ETC_DIR/agent.example.yaml and run check-config"
fi
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE_DIR"

if [ "$systemd" -eq 1 ]; then
  sed -e "s#/opt/commune-agent#$PREFIX#g" -e "s#/etc/commune-agent#$ETC_DIR#g" \
    "$ROOT/systemd/commune-agent.service" > "$UNIT_DIR/commune-agent.service.tmp"
  mv "$UNIT_DIR/commune-agent.service.tmp" "$UNIT_DIR/commune-agent.service"
  systemctl daemon-reload
  systemctl enable commune-agent.service >/dev/null
  say "unit installed and enabled: systemctl start commune-agent; journalctl -u commune-agent -f"
  if [ "$start" -eq 1 ]; then
    systemctl restart commune-agent.service
  fi
else
  say "no systemd: run it with  $PREFIX/venv/bin/commune-agent --config $ETC_DIR/agent.yaml run"
fi
"$PREFIX/venv/bin/commune-agent" --version
