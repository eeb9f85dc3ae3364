#!/usr/bin/env bash
# The README's results table, one target per row, 5 seeds each (1M steps unless the row says otherwise):
#   bash benchmark/main.sh                 # every row, one run at a time (two queues side by side: one core each)
#   bash benchmark/main.sh hopper ant      # some rows
# Rows: halfcheetah hopper ant idp pendulum point safe-cheetah cartpole point-preset
# The suite's rows are the batch study's runs of the candidate that is the scripts' default (the same flags, bit for
# bit), into results/batch; cartpole (`trpo_discrete.py`) and point-preset (OmniSafe's configuration) go to
# results/readme. Then `python benchmark/batch_study.py` writes the table: results/batch/study.md, "The README's rows".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0 1 2 3 4}
DEFAULT=batch$((16 * $($PYTHON -c "import trpo_continuous; print(trpo_continuous.Args.num_steps)")))
RUN="$PYTHON benchmark/run.py --results-dir benchmark/results/readme --workers 1 --seeds $SEEDS"
ROWS="halfcheetah hopper ant idp pendulum point safe-cheetah cartpole point-preset"

for target in ${@:-$ROWS}; do
  case $target in
    halfcheetah|hopper|ant|idp|pendulum|point|safe-cheetah) bash benchmark/batch_study.sh "$DEFAULT" "$SEEDS" "$target" ;;
    cartpole) $RUN --script trpo_discrete --env-ids CartPole-v1 --script-args="--exp-name defaults" ;;
    # OmniSafe's TRPO configuration with its target_kl and cg_damping scaled to 2 action dimensions (run.py starts
    # each run in the results folder: the preset's path is absolute); 3 seeds in results/readme
    point-preset) $RUN --env-ids SafetyPointGoal1-v0 --script-args="--config $PWD/benchmark/presets/omnisafe.yaml \
      --target-kl 0.02 --cg-damping 0.2 --exp-name omnisafe_preset_damping0.2" ;;
    *) echo "usage: $0 [ROW...], ROW one of: $ROWS" >&2; exit 2 ;;
  esac
done
$PYTHON benchmark/report.py benchmark/results/readme > /dev/null
