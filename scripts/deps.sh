#!/usr/bin/env bash
# Installs what building, running and testing Presence needs, and only what is
# missing: Debian packages (apt-get) and the npm packages of the tests.
# Idempotent: a second run installs nothing. Usage: scripts/deps.sh [--no-npm]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config clang-format
      libuv1-dev libhttp-parser-dev libnng-dev libhiredis-dev libmsgpack-dev libconfig-dev
      libjansson-dev libjwt-dev libssl-dev libcriterion-dev
      redis-server redis-tools chromium fonts-liberation wrk gnuplot-nox clang libclang-rt-14-dev)

# Node.js: machines may carry their own build (with npm inside); Debian's
# nodejs and npm packages only when there is none.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The system's redis-server must not hold port 6379 for us: every test and
# `make run` start their own on other ports, so a running system service is left alone.

if [ "${1:-}" != "--no-npm" ]; then
  if [ ! -d node_modules/ws ] || [ ! -d node_modules/playwright-core ] || [ package.json -nt node_modules/.stamp ]; then
    echo "deps: npm install"
    npm install --no-audit --no-fund --loglevel=error >/dev/null
    touch node_modules/.stamp
  fi
fi
