#!/usr/bin/env bash
# Set-up and the main jobs, for a fresh Debian machine as root (idempotent).
#   bash dev.sh demo    install, then analyze the bundled sample outage
#   bash dev.sh test    install, then run everything CI runs (lint, catalogue check, tests)
#   bash dev.sh setup   install only
set -euo pipefail
cd "$(dirname "$0")"

SYSTEM_PACKAGES=(libsystemd-dev pkg-config gcc python3-dev python3-venv systemd-journal-remote)
TEST_PACKAGES=(chromium xz-utils zstd bzip2 prometheus prometheus-alertmanager)  # promtool; a real Alertmanager

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dev.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # another apt run (unattended-upgrades, a second job) may hold the lock: wait for it, up to 10 minutes
  local wait=(-o DPkg::Lock::Timeout=600)
  apt-get "${wait[@]}" update -qq
  apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup() {
  apt_install "${SYSTEM_PACKAGES[@]}" "$@"
  local py=${PYTHON:-python3}
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  local stamp=.venv/.installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
  fi
}

case "${1:-}" in
  setup) setup ;;
  demo) setup; .venv/bin/logsense demo ;;
  test)
    setup "${TEST_PACKAGES[@]}"
    .venv/bin/ruff check logsense tests benchmarks lab
    .venv/bin/logsense catalogue check
    .venv/bin/python -m pytest -q -p no:cacheprovider "${@:2}"
    ;;
  *) echo "usage: bash dev.sh demo|test|setup" >&2; exit 2 ;;
esac
