#!/usr/bin/env bash
# Install everything kameng needs into this checkout: a Python virtualenv from the hashed
# lock file, and the pinned npm packages (solc, OpenZeppelin, anvil). Safe to run again:
# each step is skipped when its lock file has not changed since it last ran.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! [ -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.kameng-lock.sha256
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
# pip on these machines warns about unreachable local indexes; hide those lines, keep errors.
pip_() {
  local rc=0
  .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored" >&2) || rc=$?
  return $rc
}
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing Python packages from requirements.lock"
  pip_ install --quiet --upgrade pip
  pip_ install --quiet --require-hashes -r requirements.lock
  pip_ install --quiet --no-deps -e .
  .venv/bin/kameng --help >/dev/null
  echo "$want" > "$stamp"
fi
nstamp=node_modules/.kameng-lock.sha256
nwant=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$nstamp" 2>/dev/null || true)" != "$nwant" ]; then
  echo "==> installing npm packages from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error
  chmod +x node_modules/@foundry-rs/*-linux-*/bin/* 2>/dev/null || true
  echo "$nwant" > "$nstamp"
fi
# The browser tests drive Debian's headless Chromium (a test tool's own browser download does
# not work here), with a CJK font so that pages and screenshots show 卡盟 rather than boxes.
# Skipped when both are present.
if ! [ -x /usr/bin/chromium ] || ! fc-list :lang=zh family 2>/dev/null | grep -q .; then
  echo "==> installing Debian's chromium and a CJK font for the browser tests"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium fonts-wqy-microhei >/dev/null 2>&1 \
    || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium fonts-wqy-microhei >/dev/null; }
fi
