#!/usr/bin/env bash
# The README's speed table (issue: speed), into benchmark/results/speed.txt; run alone on the machine (about
# 30 minutes on 2 cores), after bash benchmark/peers/setup.sh. Every line is one speed.py process: its ratios
# (ours / raw simulator, ours / a peer, torchrun / one process) are measured within that process's run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SPEED="$PYTHON benchmark/speed.py"
POINT="--env-id SafetyPointGoal1-v0 --total-timesteps 51200 --raw-steps 10000"
{
  # 16 envs × 64 steps (the defaults before the batch study; speed_batch.sh measures today's), the peers with the
  # same envs and settings (OmniSafe runs Gymnasium's MuJoCo tasks with one env only).
  $SPEED --env-id HalfCheetah-v4 --num-steps 64 --peers
  $SPEED $POINT --num-steps 64 --peers
  # One env × 1024 steps, the same batch: every peer runs it; then 2 async envs × 512 and torchrun's 2 workers
  # (1 env × 512 each) against it.
  $SPEED --env-id HalfCheetah-v4 --num-envs 1 --num-steps 1024 --peers --workers 2
  $SPEED $POINT --num-envs 1 --num-steps 1024 --peers --workers 2
  $SPEED --env-id HalfCheetah-v4 --num-envs 2 --num-steps 512 --async-envs
  $SPEED $POINT --num-envs 2 --num-steps 512 --async-envs
  # Where one iteration's time goes, at 16 × 64.
  $SPEED --env-id HalfCheetah-v4 --num-steps 64 --breakdown --total-timesteps 20480 --raw-steps 5000
  $SPEED $POINT --num-steps 64 --breakdown
} 2>&1 | grep -v "^step " | tee benchmark/results/speed.txt
