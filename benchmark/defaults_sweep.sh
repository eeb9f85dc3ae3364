#!/usr/bin/env bash
# The defaults sweep (issue: defaults that learn well at every budget): candidate configurations × the suite,
# into benchmark/results/defaults, then `python benchmark/report.py benchmark/results/defaults`. Stage by stage,
# two queues side by side (one core each) where a stage has two:
#   bash benchmark/defaults_sweep.sh screen-point     # and screen-rest: stage 1, the screen on seed 0
#   bash benchmark/defaults_sweep.sh stage5-point     # and stage5-rest: the finalist on the suite, 3 seeds
# Each candidate is a set of flags; exp_name names it (no_anneal: the defaults since commit 4c21e92; tianshou:
# those from 03cbb47 to 4c21e92). The committed runs were made with commit 2a0117d's scripts and later ones (each
# stage names its commit), whose --num-minibatches K gave the same minibatches as --critic-minibatch-size
# batch/K here (1, 8 and 16). The stages of the evidence step and the absorbed statistics (8 to 11, and the
# discrete stage's runs with those flags) need flags and probes that the scripts no longer have: they are in git at
# commit b09fbae (git checkout b09fbae; benchmark/README.md there has their commands).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RESULTS=${RESULTS:-benchmark/results/defaults}
RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers 1"

# Before the sweep: OmniSafe's settings (20000 steps per update, 1600 critic minibatches, target_kl 0.06 summed),
# the scripts' defaults until commit 03cbb47: the OmniSafe preset with our initialization and minibatches of 125.
OLD="--config $PWD/benchmark/presets/omnisafe.yaml --weight-init orthogonal --critic-minibatch-size 125 \
  --exp-name old_defaults"
# Tianshou's MuJoCo setting: 16 envs × 64 steps = 1024 per update, 20 full-batch critic steps with the learning
# rate decayed linearly over the run, return scaling, target_kl 0.01 (summed), 10 backtracks, log σ₀ = −0.5.
TIANSHOU="--num-envs 16 --num-steps 64 --critic-minibatch-size 1024 --update-epochs 20 --normalize-reward \
  --log-std-init -0.5 --target-kl 0.01 --backtrack-iters 10 --anneal-lr"
# The same with σ₀ = 1 and OmniSafe's critic schedule (minibatches of 128, 10 passes: 80 steps per update).
T_STD0_MB128="--num-envs 16 --num-steps 64 --critic-minibatch-size 128 --update-epochs 10 --normalize-reward \
  --log-std-init 0 --target-kl 0.01 --backtrack-iters 10 --anneal-lr"
# Larger updates: 16 envs × 128 = 2048 steps, target_kl 0.02, minibatches of 128 (16 per pass, 10 passes).
T_2048="--num-envs 16 --num-steps 128 --critic-minibatch-size 128 --update-epochs 10 --normalize-reward \
  --log-std-init -0.5 --target-kl 0.02 --backtrack-iters 10 --anneal-lr"

# Larger batches for SafetyPointGoal1 (1000-step episodes: 1024 steps per update is one episode's worth):
# 16 envs × 256 = 4096 steps, target_kl 0.02, minibatches of 128.
T_4096="--num-envs 16 --num-steps 256 --critic-minibatch-size 128 --update-epochs 10 --normalize-reward \
  --log-std-init -0.5 --target-kl 0.02 --backtrack-iters 10 --anneal-lr"

# trpo_discrete.py: before (SB3-contrib's CartPole zoo setting) and the Tianshou-like setting.
D_TIANSHOU="--num-envs 16 --num-steps 64 --critic-minibatch-size 1024 --update-epochs 20 --normalize-reward \
  --target-kl 0.01 --backtrack-iters 10 --anneal-lr"

cont() {  # cont EXP_NAME "FLAGS" SEEDS ENV[:STEPS]...
  local name=$1 flags=$2 seeds=$3; shift 3
  for spec in "$@"; do
    local env=${spec%%:*} steps=${spec#*:}
    [ "$steps" = "$spec" ] && steps=1000000
    $RUN --env-ids "$env" --seeds $seeds --script-args="$flags --exp-name $name --total-timesteps $steps"
  done
}
disc() {
  local name=$1 flags=$2 seeds=$3; shift 3
  $RUN --script trpo_discrete --env-ids "$@" --seeds $seeds --script-args="$flags --exp-name $name"
}
SUITE_REST="HalfCheetah-v4 Hopper-v4 Ant-v4 SafetyHalfCheetahVelocity-v1 Pendulum-v1:200000 InvertedDoublePendulum-v4:300000"

case ${1:-} in
  # Stage 1, commit 2a0117d's scripts (one core each, side by side). The t_std0_mb128 suite was stopped after
  # HalfCheetah and Hopper: weaker than tianshou there, and its Point run was given up for stage 2.
  screen-point)
    cont tianshou "$TIANSHOU" 0 SafetyPointGoal1-v0 ;;
  screen-rest)
    disc old_defaults "" "0 1 2" CartPole-v1 Acrobot-v1 MountainCar-v0
    disc tianshou "$D_TIANSHOU" "0 1 2" CartPole-v1 Acrobot-v1 MountainCar-v0
    cont old_defaults "$OLD" 0 Pendulum-v1:200000 InvertedDoublePendulum-v4:300000 Ant-v4
    cont t_std0_mb128 "$T_STD0_MB128" 0 HalfCheetah-v4 Hopper-v4 ;;
  # Stage 2, commit c30e0e9's scripts: larger batches on SafetyPointGoal1, one run each, side by side.
  screen-point-2048) cont t_2048 "$T_2048" 0 SafetyPointGoal1-v0 ;;
  screen-point-4096) cont t_4096 "$T_4096" 0 SafetyPointGoal1-v0 ;;
  # Stage 3, commit 1557e3f's scripts, two at a time: the larger batch on MuJoCo, Tianshou's setting on the
  # classic-control tasks; trpo_discrete.py with reward normalization (SB3-contrib's zoo normalizes rewards on
  # Acrobot and MountainCar), at 2 × 512 and 2 × 1024 steps.
  stage3)
    RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers 2"
    cont t_4096 "$T_4096" 0 HalfCheetah-v4 Hopper-v4
    cont tianshou "$TIANSHOU" 0 Pendulum-v1:200000 InvertedDoublePendulum-v4:300000
    disc d_rewnorm "--normalize-reward" "0 1 2" CartPole-v1 Acrobot-v1 MountainCar-v0
    disc d_rewnorm_1024 "--normalize-reward --num-steps 1024" "0 1 2" CartPole-v1 Acrobot-v1 MountainCar-v0 ;;
  # Stage 4, commit 1557e3f's scripts: Tianshou's setting on HalfCheetah and Hopper in this results folder, then
  # the closest to OmniSafe's on SafetyPointGoal1 (t_4096) on two more seeds.
  stage4)
    RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers 2"
    cont tianshou "$TIANSHOU" 0 HalfCheetah-v4 Hopper-v4
    $RUN --env-ids SafetyPointGoal1-v0 --seeds 1 2 --script-args="$T_4096 --exp-name t_4096 --total-timesteps 1000000" ;;
  # Stage 5, commit 8ee85bb's scripts (whose defaults were still OmniSafe's), one queue per core: Tianshou's setting
  # on the whole continuous suite on 3 seeds, and the old defaults on the seeds that were missing; Ant-v4 on seed 0
  # only (a 1M-step Ant run is 15 minutes at the old defaults), for lack of time.
  stage5-point)
    cont tianshou "$TIANSHOU" "1 2" SafetyPointGoal1-v0 ;;
  stage5-rest)
    cont tianshou "$TIANSHOU" 0 SafetyHalfCheetahVelocity-v1 Ant-v4
    cont tianshou "$TIANSHOU" "1 2" HalfCheetah-v4 Hopper-v4 Pendulum-v1:200000 InvertedDoublePendulum-v4:300000
    cont old_defaults "$OLD" "1 2" Pendulum-v1:200000 InvertedDoublePendulum-v4:300000
    cont tianshou "$TIANSHOU" "1 2" SafetyHalfCheetahVelocity-v1 ;;
  # Stage 6, commit 03cbb47's scripts (the new defaults): stage 5 showed late collapses at the defaults (IDP, Pendulum,
  # a HalfCheetah evaluation) and two Hopper seeds stuck near 400. Does the critic's learning rate decaying to 0
  # (--anneal-lr, a stale critic under a policy that still moves) cause them? The defaults without it.
  stage6)
    cont no_anneal "--no-anneal-lr" "0 1 2" Pendulum-v1:200000 InvertedDoublePendulum-v4:300000 Hopper-v4 ;;
  # Stage 7, commit b79c0e1's scripts (the defaults of 03cbb47), one queue per core: stage 6's candidate on the rest
  # of the suite, and Ant-v4's seeds 1 and 2 at the defaults, which stage 5 left out.
  stage7-point)
    cont no_anneal "--no-anneal-lr" "0 1 2" SafetyPointGoal1-v0 ;;
  stage7-rest)
    cont no_anneal "--no-anneal-lr" "0 1 2" HalfCheetah-v4
    cont tianshou "$TIANSHOU" "1 2" Ant-v4
    cont no_anneal "--no-anneal-lr" "0 1 2" Ant-v4 SafetyHalfCheetahVelocity-v1 ;;
  # Ant-v4 seeds 3 to 5 at the defaults (TRPO's step; with the scripts of 882e11d to b09fbae they took
  # --evidence-decay 0 --no-absorb-statistics, the default since).
  ant-seeds)
    RUN="$PYTHON benchmark/run.py --results-dir $RESULTS --workers 2"
    cont no_anneal "--no-anneal-lr" "3 4 5" Ant-v4 ;;
  # trpo_discrete.py past its budget, into results/discrete (the script of 0aa874a): CartPole-v1 to 1M steps,
  # Acrobot-v1 to 300k.
  discrete)
    RUN="$PYTHON benchmark/run.py --results-dir benchmark/results/discrete --workers 2"
    disc cp1m "--total-timesteps 1000000" "0 1 2 3 4" CartPole-v1
    disc acro "--total-timesteps 300000" "0 1 2" Acrobot-v1 ;;
  *) echo "usage: $0 screen-point|screen-rest|screen-point-2048|screen-point-4096|stage3|stage4|stage5-point|stage5-rest|stage6|stage7-point|stage7-rest|ant-seeds|discrete" >&2
     exit 2 ;;
esac
