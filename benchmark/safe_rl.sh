#!/usr/bin/env bash
# TRPO-Lagrangian (issue: safe RL that holds the limit and still learns): each multiplier update (gradient, adam,
# pid), with and without the cost-aware line search, cost limit 25, 1M steps, at the scripts' defaults; OmniSafe's
# TRPOLag and TRPOPID at their own defaults beside them. Into benchmark/results/safe, then report.py. Runs go one at
# a time; WORKERS=2 runs two at once.
#   bash benchmark/safe_rl.sh halfcheetah            # SafetyHalfCheetahVelocity-v1, 3 seeds (about 4 min a run)
#   bash benchmark/safe_rl.sh omnisafe-halfcheetah   # after bash benchmark/peers/setup.sh (20 to 50 min a run)
#   bash benchmark/safe_rl.sh point                  # SafetyPointGoal1-v0 (about 30 to 40 min a run)
#   bash benchmark/safe_rl.sh omnisafe-point "1" TRPOLag   # OmniSafe on SafetyPointGoal1-v0 (70 to 115 min a run)
#   bash benchmark/safe_rl.sh point-rule pid "0 1"   # one rule alone (gradient, adam, pid), on the seeds given
#   bash benchmark/safe_rl.sh point-setting lag_adam_lr0.1 "0" --lagrange-update adam --lagrange-lr 0.1
#                                                    # one named setting (the flags after the seeds), on the seeds given
#   bash benchmark/safe_rl.sh point-setting lag_fixed1 "0" --lagrange-lr 0 --lagrange-multiplier-init 1   # λ fixed at 1
#   bash benchmark/safe_rl.sh halfcheetah-setting NAME SEEDS FLAGS...   # the same on SafetyHalfCheetahVelocity-v1
# Run so far (the scripts' code of commit 4c21e92 in every run): halfcheetah; point-rule gradient and pid "0 1 2",
# adam "0"; point-setting lag_gradient_search, lag_gradient_lr0.005 (--lagrange-lr 0.005), lag_adam_lr0.1
# (--lagrange-update adam --lagrange-lr 0.1), lag_gradient_raw_cost_adv (--no-standardize-cost-advantages),
# lag_pid_search (--lagrange-update pid --cost-line-search) on seed 0, and lag_adam_lr0.1_search
# (--lagrange-update adam --lagrange-lr 0.1 --cost-line-search) on seeds 0 1 2; halfcheetah-setting
# lag_adam_lr0.1_search "0 1 2" with the same flags; omnisafe-halfcheetah "0 1 2" TRPOLag; omnisafe-point "0 1 2"
# TRPOLag. At commit b93c370 (the same code): point-setting lag_fixed1 and lag_fixed2 "0" with --lagrange-lr 1e-9
# --lagrange-multiplier-init 1 or 2 (--lagrange-lr 0 was refused before dde92fe); at 635b57d, lag_fixed1.5 "0"
# (--lagrange-lr 0 --lagrange-multiplier-init 1.5) and lag_adam_search "0" (--lagrange-update adam
# --cost-line-search). Not yet: OmniSafe's TRPOPID (it runs), more seeds of the single-seed settings.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RESULTS=${RESULTS:-benchmark/results/safe}
RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers ${WORKERS:-1}"
OMNISAFE="benchmark/peers/.venv-omnisafe/bin/python benchmark/peers/omnisafe_trpo.py --total-timesteps 1000000"

ours() {  # ours ENV "SEEDS": the six settings
  for update in gradient adam pid; do
    $RUN --env-ids "$1" --seeds $2 --script-args="--cost-limit 25 --lagrange-update $update --exp-name lag_$update"
    $RUN --env-ids "$1" --seeds $2 --script-args="--cost-limit 25 --lagrange-update $update --cost-line-search \
      --exp-name lag_${update}_search"
  done
}
omnisafe() {  # omnisafe ENV "SEEDS" ALGO...
  local env=$1 seeds=$2; shift 2
  for algo in "$@"; do
    for seed in $seeds; do
      $OMNISAFE --algo "$algo" --env-id "$env" --seed "$seed" --log-dir "$RESULTS/omnisafe" > /dev/null
    done
  done
}

case ${1:-} in
  halfcheetah) ours SafetyHalfCheetahVelocity-v1 "0 1 2" ;;
  omnisafe-halfcheetah) omnisafe SafetyHalfCheetahVelocity-v1 "${2:-0 1 2}" ${3:-TRPOLag TRPOPID} ;;  # [SEEDS] [ALGO]
  point) ours SafetyPointGoal1-v0 "0 1 2" ;;
  point-rule)  # one multiplier update alone ($2), on the seeds given ($3, default 0 1 2)
    $RUN --env-ids SafetyPointGoal1-v0 --seeds ${3:-0 1 2} --script-args="--cost-limit 25 --lagrange-update $2 \
      --exp-name lag_$2" ;;
  point-setting|halfcheetah-setting)  # a setting named $2 (its exp-name), on the seeds $3, with the flags that follow
    env=SafetyPointGoal1-v0; [ "$1" = halfcheetah-setting ] && env=SafetyHalfCheetahVelocity-v1
    name=$2 seeds=$3; shift 3
    $RUN --env-ids $env --seeds $seeds --script-args="--cost-limit 25 $* --exp-name $name" ;;
  omnisafe-point) omnisafe SafetyPointGoal1-v0 "${2:-0 1 2}" ${3:-TRPOLag TRPOPID} ;;  # [SEEDS] [ALGO]
  *) echo "usage: $0 halfcheetah|omnisafe-halfcheetah [SEEDS] [ALGO]|point|point-rule RULE [SEEDS]|point-setting|halfcheetah-setting NAME SEEDS FLAGS...|omnisafe-point [SEEDS] [ALGO]" >&2
     exit 2 ;;
esac
$PYTHON benchmark/report.py "$RESULTS" > /dev/null
