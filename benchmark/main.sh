#!/usr/bin/env bash
# The README's results table, one target per row: 3 seeds each at the scripts' defaults (1M steps unless the row says
# otherwise), into benchmark/results/readme, then report.py writes its report.md and one PNG per task.
#   bash benchmark/main.sh                 # every row, one run at a time
#   bash benchmark/main.sh hopper ant      # some rows; WORKERS=2 runs two at a time (one core each)
# Rows: halfcheetah hopper ant idp pendulum point point-preset safe-cheetah cartpole
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RESULTS=${RESULTS:-benchmark/results/readme}
RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers ${WORKERS:-1} --seeds 0 1 2"
ROWS="halfcheetah hopper ant idp pendulum point point-preset safe-cheetah cartpole"

row() {
  case $1 in
    halfcheetah) $RUN --env-ids HalfCheetah-v4 --script-args="--exp-name defaults" ;;
    hopper) $RUN --env-ids Hopper-v4 --script-args="--exp-name defaults" ;;
    ant) $RUN --env-ids Ant-v4 --script-args="--exp-name defaults" ;;
    idp) $RUN --env-ids InvertedDoublePendulum-v4 --script-args="--exp-name defaults" ;;
    pendulum) $RUN --env-ids Pendulum-v1 --script-args="--exp-name defaults --total-timesteps 200000" ;;
    point) $RUN --env-ids SafetyPointGoal1-v0 --script-args="--exp-name defaults" ;;
    # OmniSafe's TRPO configuration with its target_kl and cg_damping scaled to 2 action dimensions (run.py starts
    # each run in the results folder: the preset's path is absolute). The damping's check, at 0.1: run.py
    # --results-dir benchmark/results/readme --seeds 0 1 2 --env-ids SafetyPointGoal1-v0 --script-args="--config
    # $PWD/benchmark/presets/omnisafe.yaml --target-kl 0.02 --exp-name omnisafe_preset"
    point-preset) $RUN --env-ids SafetyPointGoal1-v0 --script-args="--config $PWD/benchmark/presets/omnisafe.yaml \
      --target-kl 0.02 --cg-damping 0.2 --exp-name omnisafe_preset_damping0.2" ;;
    safe-cheetah) $RUN --env-ids SafetyHalfCheetahVelocity-v1 --script-args="--cost-limit 25 --exp-name lag25" ;;
    cartpole) $RUN --script trpo_discrete --env-ids CartPole-v1 --script-args="--exp-name defaults" ;;
    *) echo "usage: $0 [ROW...], ROW one of: $ROWS" >&2; exit 2 ;;
  esac
}

for target in ${@:-$ROWS}; do
  row "$target"
done
$PYTHON benchmark/report.py "$RESULTS" > /dev/null
