#!/usr/bin/env bash
# The batch study (benchmark/README.md, "The batch"): TRPO's update at the defaults, only --num-steps changed, on the
# suite, 5 seeds, into benchmark/results/batch; then `python benchmark/batch_study.py` writes the tables and figures.
#   bash benchmark/batch_study.sh CANDIDATE SEEDS [TASK...]   # one queue; run two side by side (one core each)
#   bash benchmark/batch_study.sh batch2048 "0 1 2 3 4"        # every task of the suite, seed by seed
#   bash benchmark/batch_study.sh batch4096 "0 1" point        # SafetyPointGoal1-v0 only
# CANDIDATE: batch1024 (16 envs × 64 steps, the defaults until this study), batch2048 (× 128), batch4096 (× 256).
# The critics' minibatches stay of 1024 samples, so their Adam steps per sample stay the same at every batch.
# batch1024's seeds 0 to 2 are results/readme's `defaults` and `lag25` runs and results/defaults' `no_anneal`
# SafetyPointGoal1-v0 runs (identity.py: today's update bit for bit); batch_study.py reads them from there.
# TASK: halfcheetah hopper ant idp pendulum safe-cheetah point (default: all but point, the 30-minute runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RESULTS=${RESULTS:-benchmark/results/batch}
candidate=${1:?usage: $0 batch1024|batch2048|batch4096 SEEDS [TASK...]}
seeds=${2:?usage: $0 CANDIDATE SEEDS [TASK...]}
shift 2
case $candidate in
  batch1024) steps=64 ;;
  batch2048) steps=128 ;;
  batch4096) steps=256 ;;
  *) echo "unknown candidate $candidate (batch1024, batch2048, batch4096)" >&2; exit 2 ;;
esac
TASKS=${*:-halfcheetah hopper ant idp pendulum safe-cheetah}
FLAGS="--num-steps $steps --exp-name $candidate"

for seed in $seeds; do
  for task in $TASKS; do
    RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers 1 --seeds $seed"
    case $task in
      halfcheetah) $RUN --env-ids HalfCheetah-v4 --script-args="$FLAGS" ;;
      hopper) $RUN --env-ids Hopper-v4 --script-args="$FLAGS" ;;
      ant) $RUN --env-ids Ant-v4 --script-args="$FLAGS" ;;
      idp) $RUN --env-ids InvertedDoublePendulum-v4 --script-args="$FLAGS" ;;
      pendulum) $RUN --env-ids Pendulum-v1 --script-args="$FLAGS --total-timesteps 200000" ;;
      safe-cheetah) $RUN --env-ids SafetyHalfCheetahVelocity-v1 --script-args="$FLAGS --cost-limit 25" ;;
      point) $RUN --env-ids SafetyPointGoal1-v0 --script-args="$FLAGS" ;;
      *) echo "unknown task $task" >&2; exit 2 ;;
    esac
    # each run's curve as soon as it ends: a session cut off loses runs/, not the committed curves
    $PYTHON benchmark/report.py "$RESULTS" > /dev/null 2>&1 || echo "report.py failed on $RESULTS" >&2
  done
done
