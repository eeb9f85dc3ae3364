"""Run a script over env ids × seeds, as parallel worker processes, into one results folder:

    python benchmark/run.py --env-ids HalfCheetah-v4 Hopper-v4 --seeds 0 1 2 --workers 2 \\
        --results-dir benchmark/results/mujoco
    python benchmark/run.py --results-dir /tmp/cartpole --script trpo_discrete --env-ids CartPole-v1 \\
        --script-args="--target-kl 0.02 --exp-name kl0.02" --dry-run

Each run is `python <script>.py --env-id ENV --seed SEED --save-model <script-args>`, started in the results
folder, so that its TensorBoard logs land in `<results-dir>/runs/<run_name>` and its console output in
`<results-dir>/logs/`. Then `python benchmark/report.py <results-dir>` writes the tables and plots."""
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Tuple

import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Args:
    results_dir: str
    """the folder that receives runs/ (TensorBoard logs, args.yaml, models) and logs/ (console output)"""
    script: str = "trpo_continuous"
    """the script to run, relative to the repository, without .py: trpo_continuous or trpo_discrete"""
    env_ids: Tuple[str, ...] = ("HalfCheetah-v4",)
    """the environment ids"""
    seeds: Tuple[int, ...] = (0, 1, 2)
    """the seeds, each run on every env id"""
    script_args: str = ""
    """further flags for every run, in one string, given with "=" (--script-args="--target-kl 0.02")"""
    workers: int = 2
    """how many runs at once (one core each: torch uses one thread)"""
    dry_run: bool = False
    """if toggled, print the commands and run nothing"""


def commands(args: Args) -> list:
    """One (log name, command) per (env id, seed); the command as an argument list."""
    script = os.path.join(REPO, f"{args.script}.py")
    stamp = int(time.time())
    extra = shlex.split(args.script_args)
    # logs are named like the runs: env, exp_name (the script's name unless --exp-name is given), seed
    exp_name = args.script
    for i, flag in enumerate(extra):
        if flag == "--exp-name" and i + 1 < len(extra):
            exp_name = extra[i + 1]
        elif flag.startswith("--exp-name="):
            exp_name = flag.split("=", 1)[1]
    return [(f"{env_id}__{exp_name}__{seed}__{stamp}.log",
             [sys.executable, script, "--env-id", env_id, "--seed", str(seed), "--save-model", *shlex.split(args.script_args)])
            for env_id in args.env_ids for seed in args.seeds]


def run_one(log_name: str, command: list, results_dir: str) -> int:
    with open(os.path.join(results_dir, "logs", log_name), "w") as log:
        returncode = subprocess.run(command, cwd=results_dir, stdout=log, stderr=subprocess.STDOUT).returncode
    print(f"{'done' if returncode == 0 else f'FAILED (exit {returncode}, see logs/{log_name})'}: {shlex.join(command)}", flush=True)
    return returncode


def main(args: Args):
    if not os.path.isfile(os.path.join(REPO, f"{args.script}.py")):
        raise SystemExit(f"error: --script {args.script}: no {args.script}.py in the repository (trpo_continuous or "
                         "trpo_discrete)")
    if args.workers <= 0:
        raise SystemExit("error: --workers must be positive")
    todo = commands(args)
    for _, command in todo:
        print(shlex.join(command))
    if args.dry_run:
        return
    os.makedirs(os.path.join(args.results_dir, "logs"), exist_ok=True)
    with ThreadPoolExecutor(args.workers) as pool:
        failures = sum(code != 0 for code in pool.map(lambda job: run_one(*job, args.results_dir), todo))
    if failures:
        raise SystemExit(f"error: {failures} of {len(todo)} runs failed; their logs are in {args.results_dir}/logs")


if __name__ == "__main__":
    main(tyro.cli(Args))
