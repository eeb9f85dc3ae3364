#!/usr/bin/env bash
# The runs behind the README's "Defaults" and "Results" tables (about 2 hours on 2 cores, two runs at a time).
# Run from a folder of your choice (each run writes runs/<run_name>); then summarize:
#   python benchmark/summarize.py 'runs/HalfCheetah-v4__*'
#   python benchmark/summarize.py 'runs/SafetyPointGoal1-v0__*' --at 100000 250000 500000 750000 1000000
#   python benchmark/summarize.py 'runs/CartPole-v1__*' --threshold 475
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$HERE/.venv/bin/python}

# trpo_continuous.py: the trust region δ, summed-KL units (0.02 = OmniSafe's 0.01 on PointGoal1's 2 action
# dimensions, 0.06 = the same on HalfCheetah's 6), two at a time.
for env_id in SafetyPointGoal1-v0 HalfCheetah-v4; do
  seeds="0"; [ "$env_id" = HalfCheetah-v4 ] && seeds="0 1 2"
  for seed in $seeds; do
    "$PYTHON" "$HERE/trpo_continuous.py" --env-id $env_id --seed $seed --target-kl 0.02 --exp-name kl0.02 --save-model &
    "$PYTHON" "$HERE/trpo_continuous.py" --env-id $env_id --seed $seed --target-kl 0.06 --exp-name kl0.06 --save-model
    wait
  done
done

# trpo_discrete.py: its defaults (SB3-contrib's CartPole settings), then the continuous script's settings.
for seed in 0 1 2; do
  "$PYTHON" "$HERE/trpo_discrete.py" --seed $seed --save-model
done
"$PYTHON" "$HERE/trpo_discrete.py" --seed 0 --exp-name continuous_defaults --num-envs 1 --num-steps 20000 \
  --gae-lambda 0.95 --cg-damping 0.1 --update-epochs 10 --num-minibatches 160

# Speed: training SPS beside the raw simulator's, one env, alone on the machine.
"$PYTHON" "$HERE/benchmark/speed.py" --env-id HalfCheetah-v4
"$PYTHON" "$HERE/benchmark/speed.py" --env-id SafetyPointGoal1-v0
