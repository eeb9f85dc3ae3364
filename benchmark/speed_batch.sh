#!/usr/bin/env bash
# The batch study's speed (benchmark/README.md, "The batch"): speed.py at each candidate batch, 16 envs × 64, 128 and
# 256 steps, against the raw simulator and SB3-contrib at the same settings (HalfCheetah-v4; SB3-contrib has no
# Safety-Gymnasium), into benchmark/results/speed_batch.txt. Run alone, after bash benchmark/peers/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEED="${PYTHON:-.venv/bin/python} benchmark/speed.py"
{
  for steps in 64 128 256; do
    $SPEED --env-id HalfCheetah-v4 --num-steps $steps --peers
    $SPEED --env-id SafetyPointGoal1-v0 --total-timesteps 51200 --raw-steps 10000 --num-steps $steps
  done
} 2>&1 | grep -v "^step " | tee benchmark/results/speed_batch.txt
