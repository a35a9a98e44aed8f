# Sourced by scripts/demo.sh and scripts/test.sh: install what is missing.
#   system packages (Debian/Ubuntu): apt-get when root, otherwise print the exact command;
#   Python packages: a .venv in the repository, reinstalled only when pyproject.toml changes.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

ensure_system_packages() {  # args: package names wanted, by the binary that proves each
  local missing=()
  have mosquitto || missing+=(mosquitto mosquitto-clients)
  if [ "${NEED_MARIADB:-0}" = 1 ]; then have mariadbd || missing+=(mariadb-server mariadb-client); fi
  # The browser tests drive Debian's Chromium (a test tool's own browser download does not work offline).
  if [ "${NEED_BROWSER:-0}" = 1 ]; then have chromium || missing+=(chromium); fi
  # The web UI behind nginx (TLS, WebSocket proxying): tests/integration/test_nginx.py runs Debian's.
  if [ "${NEED_NGINX:-0}" = 1 ]; then have nginx || missing+=(nginx); fi
  # Opt-in only (bench/bench_galera.py, pytest -m galera): the Galera provider for a 3-node MariaDB cluster.
  if [ "${NEED_GALERA:-0}" = 1 ]; then [ -e /usr/lib/galera/libgalera_smm.so ] || missing+=(galera-4); fi
  # The PDF shift report embeds DejaVu Sans (webui/reports.py, WEBUI_PDF_FONT): Unicode text prints as written.
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo ">> installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Missing system packages: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

ensure_venv() {  # arg: pip extras, e.g. "[test]" or ""
  local extras="$1" stamp=".venv/.installed$1"
  if [ ! -x .venv/bin/python ]; then
    echo ">> creating .venv"
    python3 -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo ">> installing Python packages into .venv (log: .venv/pip.log)"
    if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".${extras}"; } \
        > .venv/pip.log 2>&1; then
      tail -30 .venv/pip.log >&2
      echo "pip install failed; full log in .venv/pip.log" >&2
      exit 1
    fi
    touch "$stamp"
  fi
  # Chart.js and the Socket.IO client, from the npm registry (pinned, hash-checked), served locally.
  .venv/bin/python -m webui assets --check >/dev/null 2>&1 || .venv/bin/python -m webui assets
  # The translations' .mo files, compiled from the .po in the repository (never committed).
  .venv/bin/python -m webui translations compile >/dev/null
}
