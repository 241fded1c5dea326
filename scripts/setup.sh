#!/usr/bin/env bash
# Installs what realtime-sed needs on a fresh Debian/Ubuntu box with Python >= 3.11:
# PortAudio from apt (when missing) and a virtual environment in .venv with the given extras, every
# package at the version pinned in requirements.lock (made by scripts/lock.sh), so every machine
# gets the same numpy, textual, torch, ...
#   scripts/setup.sh            runtime only (numpy, onnxruntime, sounddevice, textual, ...)
#   scripts/setup.sh train,dev  plus torch/torchaudio for training and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing ${missing[*]} with apt-get"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
}
apt_install libportaudio2
# espeak-ng: synthetic speech negatives for training (train/negatives.py)
if [[ "$extras" == *train* ]]; then apt_install espeak-ng; fi
# mosquitto: the real MQTT broker the action tests start
if [[ "$extras" == *dev* ]]; then apt_install mosquitto; fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
stamp=".venv/.installed-${extras:-runtime}"
lock=requirements.lock
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c "$lock" -e "$spec"
  touch "$stamp"
fi
