#!/usr/bin/env bash
# torchrun's 2 workers against one process, this design and an older one alternated in one session, into
# benchmark/results/speed_workers.txt (about 20 minutes on 2 cores, alone on the machine):
#   git worktree add /tmp/before 9cffde8 && bash benchmark/speed_workers.sh /tmp/before
# Each line is one speed.py process (the same command for both designs): one env × 1024 steps in one process, then
# 2 workers with one env × 512 steps each (the same global batch); then benchmark/collectives.py for each design.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
BEFORE=${1:?usage: $0 FOLDER_OF_THE_OLDER_SCRIPTS}
POINT="--env-id SafetyPointGoal1-v0 --total-timesteps 51200 --raw-steps 10000"
CHEETAH="--env-id HalfCheetah-v4"
{
  for round in 1 2; do
    for env in "$POINT" "$CHEETAH"; do
      for scripts in . "$BEFORE"; do
        echo "== round $round, the scripts of $scripts"
        $PYTHON "$scripts/benchmark/speed.py" $env --num-envs 1 --num-steps 1024 --workers 2
      done
    done
  done
  for scripts in . "$BEFORE"; do
    $PYTHON -m torch.distributed.run --standalone --nproc_per_node 2 benchmark/collectives.py --scripts "$scripts"
  done
} 2>&1 | grep -v "^step \|^\*\|OMP_NUM_THREADS\|^$" | tee benchmark/results/speed_workers.txt
