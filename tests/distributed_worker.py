"""The torchrun workers of tests/test_distributed.py (not a test file itself), one launch for all of its checks, since
each launch costs seconds of start-up:

    LOST_RANK=0 torchrun --nproc_per_node 2 --max-restarts 1 tests/distributed_worker.py OUT_DIR

First, for trpo_continuous and then trpo_discrete in the same workers: a tiny run of 6 iterations, then (a second
train() call) the run resumed from its checkpoint after 3 iterations; each worker saves its final parameters and
observation statistics of both to OUT_DIR/<script>_train<rank>.pt and OUT_DIR/<script>_resume<rank>.pt, and the
torch.distributed calls of the first run to OUT_DIR/<script>_calls<rank>.pt; the learner (rank 0) saves what went into
its last update and the parameters that came out to OUT_DIR/<script>_update.pt. Then, in OUT_DIR/lost, a run of 6
iterations of trpo_continuous whose worker of rank LOST_RANK kills itself (SIGKILL) once a checkpoint is written;
torchrun restarts every worker, and the restarted workers (which skip the first part) finish the run."""
import copy
import glob
import importlib
import os
import signal
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import register_test_envs  # noqa: E402  (this folder is on sys.path: the worker runs from it)

register_test_envs()
out_dir = sys.argv[1]
rank, first_attempt = int(os.environ["RANK"]), os.environ["TORCHELASTIC_RESTART_COUNT"] == "0"
QUERIES = {"is_initialized", "is_available", "get_rank", "get_world_size", "PrefixStore", "rendezvous",
           "init_process_group", "destroy_process_group"}  # they set up or ask; every other call communicates


class CountedCalls:
    """torch.distributed, with a record of the name of every call that communicates."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        value = getattr(dist, name)
        if name in QUERIES or not callable(value):
            return value
        return lambda *args, **kwargs: self.calls.append(name) or value(*args, **kwargs)


def train_and_resume(script):
    trpo = importlib.import_module(script)
    env_id = "Pendulum-v1" if script == "trpo_continuous" else "CartPole-v1"
    saved_states, original_save, original_update, updates = [], trpo.save_checkpoint, trpo.update, []

    def keep_a_copy(state, path):  # (rank 0 writes the checkpoints)
        original_save(state, path)
        saved_states.append(torch.load(path, weights_only=True))

    def recorded_update(agent, optimizers, *inputs):  # the learner's: its inputs, the RNG, then its parameters
        before = copy.deepcopy({"agent": agent.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                                "inputs": inputs, "rng": torch.get_rng_state()})
        outputs = original_update(agent, optimizers, *inputs)
        updates[:] = [before | {"after": copy.deepcopy(agent.state_dict())}]
        return outputs

    def save(result, name):
        torch.save({"agent": result["agent"].state_dict(), "global_step": result["global_step"],
                    "obs_rms": result["obs_rms"].state_dict()}, os.path.join(out_dir, f"{script}_{name}{rank}.pt"))

    trpo.save_checkpoint, trpo.update, trpo.dist = keep_a_copy, recorded_update, CountedCalls()
    save(trpo.train(trpo.Args(env_id=env_id, total_timesteps=2400, num_envs=1, num_steps=400, critic_minibatch_size=100,
                              update_epochs=2, save_model=True, eval_episodes=1, checkpoint_every=3,
                              normalize_reward=True)), "train")
    torch.save(trpo.dist.calls, os.path.join(out_dir, f"{script}_calls{rank}.pt"))
    if rank == 0:
        torch.save(updates[0], os.path.join(out_dir, f"{script}_update.pt"))
    (checkpoint,) = glob.glob(os.path.join(out_dir, "runs", f"{env_id}__*", "checkpoint.pt"))
    if rank == 0:
        torch.save(saved_states[0], checkpoint)  # the checkpoint after 3 of the 6 iterations
    dist.barrier()
    save(trpo.train(trpo.Args(resume=checkpoint)), "resume")


def lost_after_a_checkpoint(trpo):
    original_to_learner = trpo.to_learner

    def to_learner(*batch):  # every worker calls it once an iteration
        if first_attempt and rank == int(os.environ["LOST_RANK"]) and glob.glob("runs/*/checkpoint.pt"):
            os.kill(os.getpid(), signal.SIGKILL)
        return original_to_learner(*batch)

    trpo.to_learner = to_learner
    os.makedirs(os.path.join(out_dir, "lost"), exist_ok=True)
    os.chdir(os.path.join(out_dir, "lost"))  # where the restarted workers look for the run (and no other runs are)
    trpo.train(trpo.Args(env_id="Pendulum-v1", total_timesteps=2400, num_envs=1, num_steps=400,
                         critic_minibatch_size=100, update_epochs=2, checkpoint_every=2))


if first_attempt:
    train_and_resume("trpo_continuous")
    train_and_resume("trpo_discrete")
lost_after_a_checkpoint(importlib.import_module("trpo_continuous"))  # (first attempt: still recording, as above)
