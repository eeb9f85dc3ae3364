"""OmniSafe's TRPO on one env at its own defaults (which ours follow), one env, one torch thread; prints its
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
parser.add_argument("--num-steps", type=int, default=20_000)
parser.add_argument("--minibatch-size", type=int, default=125, help="the critic's minibatch")
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
import omnisafe  # noqa: E402

dataclasses.dataclass = original_dataclass

custom_cfgs = {
    "seed": args.seed,
    "train_cfgs": {"total_steps": args.total_timesteps, "vector_env_nums": 1, "torch_threads": 1, "device": "cpu"},
    "algo_cfgs": {"steps_per_epoch": args.num_steps, "batch_size": args.minibatch_size},
    "logger_cfgs": {"use_wandb": False, "log_dir": args.log_dir or tempfile.mkdtemp()},
}
agent = omnisafe.Agent(args.algo, args.env_id, custom_cfgs=custom_cfgs)
start = time.perf_counter()
agent.learn()
print(f"SPS {args.total_timesteps / (time.perf_counter() - start):.0f}")
