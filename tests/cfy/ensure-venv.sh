#!/usr/bin/env bash
# Makes sure the real, unmodified Cloudify 5.0.5.1 CLI (`cfy`) is installed in a cached venv
# outside the repo, and prints the path of its `cfy` on stdout. Idempotent: a completed
# install is reused. tests/cfy_cli.rs drives this CLI against a real collector.
#
# cloudify 5.0.5.1 is Python 2 only; the interpreter is the pyenv 2.7.18 our machines carry.
# Environment: CFY_VENV (default ~/.cache/status-reporter/cfy-5.0.5.1), PY2 (the interpreter).
set -euo pipefail

venv=${CFY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/cfy-5.0.5.1}
cfy=$venv/bin/cfy

# The stamp is written only after a complete install, so an interrupted one is redone.
stamp=$venv/.installed-cloudify-5.0.5.1
if [[ -f $stamp && -x $cfy ]]; then
  echo "$cfy"
  exit 0
fi

# Test binaries run in parallel: one installs, the others wait for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ -f $stamp && -x $cfy ]]; then
  echo "$cfy"
  exit 0
fi

if [[ -z ${PY2:-} ]]; then
  if command -v pyenv >/dev/null; then
    PY2=$(pyenv root)/versions/2.7.18/bin/python
  else
    PY2=$HOME/.pyenv/versions/2.7.18/bin/python
  fi
fi
if [[ ! -x $PY2 ]]; then
  echo "ensure-venv: no Python 2.7.18 at $PY2 (install it with pyenv, or set PY2)" >&2
  exit 1
fi

{
  echo "ensure-venv: installing cloudify==5.0.5.1 into $venv"
  rm -rf "$venv"
  "$PY2" -m pip install -q --disable-pip-version-check 'virtualenv<20.22'
  "$PY2" -m virtualenv -q "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'cloudify==5.0.5.1'
  "$cfy" --version
} >&2
touch "$stamp"
echo "$cfy"
