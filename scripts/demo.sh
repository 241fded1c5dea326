#!/usr/bin/env bash
# The main job on bundled audio: set up, then open the live dashboard on the demo recording,
# replayed in real time through the same path as a microphone. Press q to quit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/realtime-sed listen --model convdb --file demo/urban-demo.ogg --realtime "$@"
