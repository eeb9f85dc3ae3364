"""Training speed against the raw simulator, measured in one process run:

    python benchmark/speed.py --env-id HalfCheetah-v4 --total-timesteps 100000
    python benchmark/speed.py --env-id SafetyPointGoal1-v0 --num-envs 2 --async-envs

(a) raw: the same vectorized envs as training (the script's own `make_vector_env`) stepped with random
actions; (b) training: `train()` with the script's defaults for this env and vectorization. The raw
simulator is measured before and after training and averaged, so that a machine whose speed drifts
affects both sides alike. Prints training SPS / raw SPS. Runs are written to a temporary folder."""
import dataclasses
import importlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Args:
    env_id: str = "HalfCheetah-v4"
    """the environment id"""
    script: str = "trpo_continuous"
    """the script whose `make_vector_env` and `train` are measured (trpo_continuous or trpo_discrete)"""
    num_envs: int = 1
    """the number of environments, for both measurements"""
    async_envs: bool = False
    """if toggled, one process per environment, for both measurements"""
    total_timesteps: int = 100_000
    """environment steps of the training measurement (include at least one update: num_steps × num_envs)"""
    raw_steps: int = 20_000
    """environment steps of each raw-simulator measurement"""


def raw_sps(module, script_args, steps: int) -> float:
    """Steps per second of the vectorized envs under uniformly random actions (the simulator's own speed)."""
    envs = module.make_vector_env(script_args, run_name="speed")
    envs.reset(seed=0)
    envs.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps // script_args.num_envs):
        envs.step(envs.action_space.sample())
    elapsed = time.perf_counter() - start
    envs.close()
    return steps // script_args.num_envs * script_args.num_envs / elapsed


def main(args: Args):
    module = importlib.import_module(args.script)
    script_args = dataclasses.replace(module.Args(), env_id=args.env_id, num_envs=args.num_envs,
                                      async_envs=args.async_envs, total_timesteps=args.total_timesteps,
                                      exp_name="speed")
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        raw_before = raw_sps(module, script_args, args.raw_steps)
        training = module.train(script_args)["sps"]
        raw_after = raw_sps(module, script_args, args.raw_steps)
    raw = (raw_before + raw_after) / 2
    print(f"{args.env_id}, {args.num_envs} env(s){' async' if args.async_envs else ''}: "
          f"raw {raw:.0f} SPS (before {raw_before:.0f}, after {raw_after:.0f}), training {training} SPS, "
          f"training / raw = {training / raw:.2f}")


if __name__ == "__main__":
    main(tyro.cli(Args))
