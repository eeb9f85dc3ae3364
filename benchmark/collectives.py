"""What torchrun's workers say to each other in an iteration, and what that costs here and across machines:

    torchrun --standalone --nproc_per_node 2 benchmark/collectives.py --scripts .             # this design
    git worktree add /tmp/before 9cffde8                                                    # the design before
    torchrun --standalone --nproc_per_node 2 benchmark/collectives.py --scripts /tmp/before

Runs `iterations` iterations of trpo_continuous.py (the defaults, --env-id) in each worker with every torch.distributed
call recorded: its name and when each worker entered and left it. A collective's own cost is the time from the last
worker's entry to the last worker's exit (the time a worker waits for the others is not the collective's). Rank 0
prints the calls per iteration, their cost per iteration on this machine (loopback gloo), and the same plus one
latency per call at 1 ms and 10 ms, a lower bound for workers on different machines (gloo's object collectives take
two or three round trips each, an all-reduce of two workers one or two)."""
import argparse
import importlib
import os
import sys
import tempfile
import time
from collections import Counter

import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--scripts", required=True, help="the folder holding the trpo_continuous.py to run")
parser.add_argument("--env-id", default="HalfCheetah-v4")
parser.add_argument("--iterations", type=int, default=20)
options = parser.parse_args()
sys.path.insert(0, os.path.abspath(options.scripts))
trpo = importlib.import_module("trpo_continuous")
SET_UP = {"is_initialized", "is_available", "get_rank", "get_world_size", "PrefixStore", "rendezvous",
          "init_process_group", "destroy_process_group", "barrier"}  # they set up, ask or stop; the rest communicate


class TimedCalls:
    """torch.distributed, with (name, entry, exit) of every call that communicates."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        value = getattr(dist, name)
        if name in SET_UP or not callable(value):
            return value

        def timed(*args, **kwargs):
            entry = time.time()
            out = value(*args, **kwargs)
            self.calls.append((name, entry, time.time()))
            return out
        return timed


trpo.dist = TimedCalls()
os.chdir(tempfile.mkdtemp())
args = trpo.Args(env_id=options.env_id, checkpoint_every=0)
args.total_timesteps = options.iterations * args.num_envs * args.num_steps
trpo.train(args)
rank, calls = dist.get_rank(), trpo.dist.calls
gathered = [None] * dist.get_world_size() if rank == 0 else None
dist.gather_object(calls, gathered, dst=0)
if rank == 0:
    if len({len(worker) for worker in gathered}) != 1:
        raise SystemExit("error: the workers made different numbers of calls")
    names = Counter(name for name, _, _ in calls)
    cost = sum(max(worker[k][2] for worker in gathered) - max(worker[k][1] for worker in gathered)
               for k in range(len(calls)))
    per_iteration = len(calls) / options.iterations
    print(f"{options.scripts}: {options.env_id}, 2 workers, {options.iterations} iterations (start-up included)")
    print(f"calls per iteration: {per_iteration:.1f} ({', '.join(f'{n} {c / options.iterations:.1f}' for n, c in names.most_common())})")
    print(f"their cost per iteration here: {1000 * cost / options.iterations:.1f} ms")
    for latency in (0.001, 0.010):
        estimate = cost / options.iterations + per_iteration * latency
        print(f"at {1000 * latency:.0f} ms of latency: at least {1000 * estimate:.0f} ms per iteration")
