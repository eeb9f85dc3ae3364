#!/usr/bin/env bash
# TRPO-Lagrangian at OmniSafe's budgets (the issue after the minimal reference): OmniSafe's PID Lagrangian
# (--lagrange-update pid) and its levers on SafetyPointGoal1-v0 at 2M steps, the published budget of 1e7 steps, and
# SafetyHalfCheetahVelocity-v1 at 1M; OmniSafe's own TRPOPID and TRPOLag beside them. Cost limit 25 throughout.
#   bash benchmark/safe_rl_budget.sh point2m NAME "SEEDS" FLAGS...   # ours, 2M steps, into results/point2m
#   bash benchmark/safe_rl_budget.sh omnisafe2m "SEEDS" ALGO         # OmniSafe's ALGO (TRPOPID, TRPOLag), 2M steps
#     (its 20000 steps an epoch from 2 envs of 10000: OmniSafe resets every env at each epoch and the episodes are
#     1000 steps long, so the data are the same in distribution as from 1 env, and it runs 1.6x faster; 412 against
#     257 SPS, measured side by side)
#   bash benchmark/safe_rl_budget.sh cheetah NAME "SEEDS" FLAGS...   # SafetyHalfCheetahVelocity-v1, 1M, results/safe
#   bash benchmark/safe_rl_budget.sh point1e7 NAME SEED FLAGS...     # 1e7 steps under torchrun (2 workers)
# In FLAGS, the word omnisafe-pid stands for OmniSafe's TRPOPID configuration in our flags: its TRPO preset, its
# target_kl 0.01 and cg_damping 0.1 on SafetyPointGoal1's 2 action dimensions (0.02 and 0.2 here), λ₀ 0.001, J_c the
# mean of the last 50 episodes, and the cost advantages centred, not scaled (OmniSafe's standardized_cost_adv); e.g.
# point2m pid_centred "0 1 2" omnisafe-pid. The runs named pid_omnisafe ran it before commit 7ea9384, with Â_c
# standardized. The cheetah's pid_rule runs: the same rule, J_c and Â_c at the defaults: cheetah pid_rule "0 1 2"
# --lagrange-update pid --lagrange-multiplier-init 0.001 --cost-window 50 --no-standardize-cost-advantages
# The warm-up of λ (pid_warmup240k) ran a probe that patched the script: it is in git at commit b09fbae.
# Three times the trust region and a margin (stopped at 0.68M): WORKERS=2 bash benchmark/safe_rl_budget.sh point2m
# pid_kl06_limit24 "0 1 2" omnisafe-pid --target-kl 0.06 --cost-limit 24 --checkpoint-every 5
# The limit margins: WORKERS=2 bash benchmark/safe_rl_budget.sh point2m pid_limit24 "0 1" omnisafe-pid --cost-limit 24
# --checkpoint-every 5, then seed 2; pid_limit24_5 with --cost-limit 24.5 and WORKERS=3 for "0 1 2" side by side
# Damping the swing, a faster proportional term (its moving average's α 0.5, not 0.95): WORKERS=3 bash
# benchmark/safe_rl_budget.sh point2m pid_p_fast "0 1 2" omnisafe-pid --pid-p-ema-alpha 0.5 --checkpoint-every 5
# and with five times its gain (K_p 0.5), so that it weighs beside the integral: pid_kp05_fast, the same with
# --pid-kp 0.5 --pid-p-ema-alpha 0.5 (set aside, stopped at 0.5M)
# OmniSafe's seeds 1 and 2 ran side by side, one command each: bash benchmark/safe_rl_budget.sh omnisafe2m 1 TRPOPID
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
# OmniSafe's TRPOPID on SafetyPointGoal1's 2 action dimensions: presets/omnisafe_trpopid.yaml with its target_kl and
# cg_damping × 2. The committed point2m and point1e7 runs used --cg-damping 0.1: append it to rerun them as they ran.
OMNISAFE_PID="--config $PWD/benchmark/presets/omnisafe_trpopid.yaml --target-kl 0.02 --cg-damping 0.2"

case ${1:-} in
  point2m|cheetah)
    env=SafetyPointGoal1-v0 steps=2000000 results=benchmark/results/point2m
    [ "$1" = cheetah ] && env=SafetyHalfCheetahVelocity-v1 steps=1000000 results=benchmark/results/safe
    name=$2 seeds=$3; shift 3
    flags="${*//omnisafe-pid/$OMNISAFE_PID}"
    $PYTHON benchmark/run.py --results-dir $results --env-ids $env --seeds $seeds --workers ${WORKERS:-1} \
      --script-args="--cost-limit 25 --total-timesteps $steps $flags --exp-name $name"
    $PYTHON benchmark/report.py $results > /dev/null ;;
  omnisafe2m)
    for seed in $2; do
      benchmark/peers/.venv-omnisafe/bin/python benchmark/peers/omnisafe_trpo.py --algo "$3" --env-id SafetyPointGoal1-v0 \
        --seed "$seed" --total-timesteps 2000000 --num-envs 2 --num-steps 10000 --log-dir benchmark/results/point2m/omnisafe > /dev/null
    done
    $PYTHON benchmark/report.py benchmark/results/point2m > /dev/null ;;
  point1e7)
    name=$2 seed=$3; shift 3
    flags="${*//omnisafe-pid/$OMNISAFE_PID}"
    mkdir -p benchmark/results/point1e7/logs
    (cd benchmark/results/point1e7 && ../../../.venv/bin/python -m torch.distributed.run --standalone --nproc_per_node 2 \
      ../../../trpo_continuous.py --env-id SafetyPointGoal1-v0 --seed "$seed" --save-model --cost-limit 25 \
      --total-timesteps 10000000 $flags --exp-name "$name" > "logs/SafetyPointGoal1-v0__${name}__${seed}.log" 2>&1)
    $PYTHON benchmark/report.py benchmark/results/point1e7 > /dev/null ;;
  *) echo "usage: $0 point2m|cheetah NAME SEEDS FLAGS... | omnisafe2m SEEDS ALGO | point1e7 NAME SEED FLAGS..." >&2
     exit 2 ;;
esac
