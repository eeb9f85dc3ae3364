"""OmniSafe's TRPO (or --algo, e.g. TRPOLag) at its own defaults unless told otherwise, one torch thread; prints its
training SPS as `SPS <n>`. Runs in the virtual environment that benchmark/peers/setup.sh makes
(.venv-omnisafe). benchmark/speed.py calls it for speed; with --log-dir it is a learning run whose
progress.csv (OmniSafe's own log) benchmark/report.py reads beside our runs."""
import argparse
import dataclasses
import tempfile
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--env-id", default="SafetyPointGoal1-v0")
parser.add_argument("--total-timesteps", type=int, default=100_000)
# Unset options keep OmniSafe's own defaults (its learning runs); benchmark/speed.py sets them to ours.
parser.add_argument("--num-envs", type=int, default=None, help="vector_env_nums (default 1)")
parser.add_argument("--num-steps", type=int, default=None, help="steps per env per epoch (default 20000)")
parser.add_argument("--minibatch-size", type=int, default=None, help="the critic's minibatch (default 128)")
parser.add_argument("--update-epochs", type=int, default=None, help="critic passes per epoch (default 10)")
parser.add_argument("--target-kl", type=float, default=None, help="ours, summed over action dimensions (default "
                    "OmniSafe's 0.01 averaged over them)")
parser.add_argument("--normalize-reward", action="store_true", help="reward_normalize (default off)")
parser.add_argument("--anneal-lr", action="store_true", help="linear_lr_decay of the critic (default off)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--algo", default="TRPO", help="an OmniSafe algorithm name, e.g. TRPOLag")
parser.add_argument("--log-dir", default=None, help="keep OmniSafe's logs here (default: a temporary folder)")
args = parser.parse_args()

# Python 3.11 refuses safety-gymnasium's numpy-array dataclass defaults: trpo_continuous.py's fix, repeated
# because this virtual environment cannot import our script (no tyro).
original_dataclass = dataclasses.dataclass


def dataclass_with_array_defaults(cls=None, /, **kwargs):
    def wrap(cls):
        for name, value in list(vars(cls).items()):
            if isinstance(value, np.ndarray):
                setattr(cls, name, dataclasses.field(default_factory=value.copy))
        return original_dataclass(cls, **kwargs)

    return wrap if cls is None else wrap(cls)


dataclasses.dataclass = dataclass_with_array_defaults
import gymnasium  # noqa: E402
import omnisafe  # noqa: E402
import safety_gymnasium  # noqa: E402

dataclasses.dataclass = original_dataclass

num_envs = args.num_envs or 1
algo_cfgs = {"steps_per_epoch": num_envs * args.num_steps if args.num_steps else None,  # OmniSafe's is over all envs
             "batch_size": args.minibatch_size, "update_iters": args.update_epochs,
             "reward_normalize": args.normalize_reward or None}
if args.target_kl is not None:  # OmniSafe averages the KL over action dimensions
    make = safety_gymnasium.make if args.env_id.startswith("Safety") else gymnasium.make
    algo_cfgs["target_kl"] = args.target_kl / gymnasium.spaces.flatdim(make(args.env_id).action_space)
custom_cfgs = {
    "seed": args.seed,
    "train_cfgs": {"total_steps": args.total_timesteps, "vector_env_nums": num_envs, "torch_threads": 1, "device": "cpu"},
    "algo_cfgs": {key: value for key, value in algo_cfgs.items() if value is not None},
    "model_cfgs": {"linear_lr_decay": True} if args.anneal_lr else {},
    "logger_cfgs": {"use_wandb": False, "log_dir": args.log_dir or tempfile.mkdtemp()},
}
agent = omnisafe.Agent(args.algo, args.env_id, custom_cfgs=custom_cfgs)
start = time.perf_counter()
agent.learn()
print(f"SPS {args.total_timesteps / (time.perf_counter() - start):.0f}")
