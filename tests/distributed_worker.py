"""One torchrun worker for tests/test_distributed.py (not a test file itself):

    torchrun --nproc_per_node 2 tests/distributed_worker.py SCRIPT MODE OUT_DIR

MODE `train`: a tiny run of 6 iterations, then, in the same process (a second train() call), the run resumed from its
checkpoint after 3 iterations; each worker saves its final parameters and observation statistics of both to
OUT_DIR/train<rank>.pt and OUT_DIR/resume<rank>.pt. MODE `averages`: each worker holds one half of a fixed batch and
saves the averaged quantities it computes (Fisher-vector product, policy step, standardized advantages, explained
variance, observation statistics, the episodic costs)."""
import glob
import importlib
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import register_test_envs  # noqa: E402  (this folder is on sys.path: the worker runs from it)

register_test_envs()
script, mode, out_dir = sys.argv[1:4]
trpo = importlib.import_module(script)
rank = int(os.environ["RANK"])


def save(result, name):
    torch.save({"agent": result["agent"].state_dict(), "global_step": result["global_step"],
                "obs_rms": result["obs_rms"].state_dict()}, os.path.join(out_dir, f"{name}{rank}.pt"))


if mode == "train":
    saved_states, original = [], trpo.save_checkpoint

    def keep_a_copy(state, path):  # (rank 0 writes the checkpoints)
        original(state, path)
        saved_states.append(torch.load(path, weights_only=True))

    trpo.save_checkpoint = keep_a_copy
    env_id = "Pendulum-v1" if script == "trpo_continuous" else "CartPole-v1"
    save(trpo.train(trpo.Args(env_id=env_id, total_timesteps=2400, num_envs=1, num_steps=400, critic_minibatch_size=100,
                              update_epochs=2, save_model=True, eval_episodes=1, checkpoint_every=3,
                              normalize_reward=True)), "train")
    (checkpoint,) = glob.glob(os.path.join(out_dir, "runs", "*", "checkpoint.pt"))
    if rank == 0:
        torch.save(saved_states[0], checkpoint)  # the checkpoint after 3 of the 6 iterations
    dist.barrier()
    save(trpo.train(trpo.Args(resume=checkpoint)), "resume")
else:
    dist.init_process_group("gloo")
    batch = torch.load(os.path.join(out_dir, "batch.pt"), weights_only=False)
    half = slice(rank * len(batch["obs"]) // 2, (rank + 1) * len(batch["obs"]) // 2)
    torch.manual_seed(0)
    agent = trpo.Agent(batch["obs"].shape[1], batch["n_out"], trpo.Args(hidden_sizes=(8,)))
    averaged = {"fvp": trpo.fisher_vector_product(agent, batch["obs"][half], 0.1)(batch["vector"]),
                "standardized": trpo.standardize(batch["advantages"][half]),
                "fit": trpo.explained_variance(batch["advantages"].flip(0)[half], batch["advantages"][half])}
    averaged["update"] = trpo.trpo_policy_update(agent, batch["obs"][half], batch["actions"][half],
                                                  batch["logprobs"][half], batch["advantages"][half],
                                                  trpo.Args(target_kl=0.01, cg_iters=10))
    averaged["policy"] = [p.detach().clone() for p in agent.actor_parameters()]
    # a first synchronization (rank 0's 10 observations become every worker's statistics), then a second one of
    # each worker's observations since: its rows of 10 to 40, in 3 batches
    own = trpo.RunningMeanStd(3, count=0.0)
    if rank == 0:
        own.update(batch["raw_obs"][:10])
    synced = trpo.synchronize_statistics(trpo.RunningMeanStd(3), own)[1]
    own = trpo.RunningMeanStd(3, count=0.0)
    for rows in np.array_split(np.arange(10, 40)[rank::2], 3):
        own.update(batch["raw_obs"][rows])
    averaged["obs_rms"] = trpo.synchronize_statistics(synced, own)[0].state_dict()
    averaged["costs"] = trpo.gather_over_workers([1.0, 2.0, 3.0] if rank == 0 else [10.0])
    if script == "trpo_continuous":
        averaged["centred"] = trpo.standardize(batch["advantages"][half], scale=False)
    torch.save(averaged, os.path.join(out_dir, f"rank{rank}.pt"))
dist.destroy_process_group()
