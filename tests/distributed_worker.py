"""One torchrun worker for tests/test_distributed.py (not a test file itself):

    torchrun --nproc_per_node 2 tests/distributed_worker.py SCRIPT MODE OUT_DIR

MODE `train`: a tiny run of 6 iterations, then, in the same process (a second train() call), the run resumed from its
checkpoint after 3 iterations; each worker saves its final parameters and observation statistics of both to
OUT_DIR/train<rank>.pt and OUT_DIR/resume<rank>.pt, and the torch.distributed calls of the first run to
OUT_DIR/calls<rank>.pt; the learner (rank 0) saves what went into its last update and the parameters that came out
to OUT_DIR/update.pt. MODE `lost` (under --max-restarts 1): a run of 10 iterations whose worker of rank LOST_RANK
kills itself (SIGKILL) on the first attempt once a checkpoint is written; the restarted workers finish the run."""
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
script, mode, out_dir = sys.argv[1:4]
trpo = importlib.import_module(script)
rank = int(os.environ["RANK"])
env_id = "Pendulum-v1" if script == "trpo_continuous" else "CartPole-v1"
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


def save(result, name):
    torch.save({"agent": result["agent"].state_dict(), "global_step": result["global_step"],
                "obs_rms": result["obs_rms"].state_dict()}, os.path.join(out_dir, f"{name}{rank}.pt"))


if mode == "train":
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

    trpo.save_checkpoint, trpo.update, trpo.dist = keep_a_copy, recorded_update, CountedCalls()
    save(trpo.train(trpo.Args(env_id=env_id, total_timesteps=2400, num_envs=1, num_steps=400, critic_minibatch_size=100,
                              update_epochs=2, save_model=True, eval_episodes=1, checkpoint_every=3,
                              normalize_reward=True)), "train")
    torch.save(trpo.dist.calls, os.path.join(out_dir, f"calls{rank}.pt"))
    if rank == 0:
        torch.save(updates[0], os.path.join(out_dir, "update.pt"))
    (checkpoint,) = glob.glob(os.path.join(out_dir, "runs", "*", "checkpoint.pt"))
    if rank == 0:
        torch.save(saved_states[0], checkpoint)  # the checkpoint after 3 of the 6 iterations
    dist.barrier()
    save(trpo.train(trpo.Args(resume=checkpoint)), "resume")
else:
    original_to_learner = trpo.to_learner

    def lost_after_a_checkpoint(*batch):  # every worker calls it once an iteration
        first_attempt = os.environ["TORCHELASTIC_RESTART_COUNT"] == "0"
        if first_attempt and rank == int(os.environ["LOST_RANK"]) and glob.glob("runs/*/checkpoint.pt"):
            os.kill(os.getpid(), signal.SIGKILL)
        return original_to_learner(*batch)

    trpo.to_learner = lost_after_a_checkpoint
    trpo.train(trpo.Args(env_id=env_id, total_timesteps=4000, num_envs=1, num_steps=400, critic_minibatch_size=100,
                         update_epochs=2, checkpoint_every=3))
