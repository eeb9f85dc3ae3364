"""One torchrun worker for tests/test_distributed.py (not a test file itself):

    torchrun --nproc_per_node 2 tests/distributed_worker.py SCRIPT MODE OUT_DIR

MODE `train`: a tiny training run of 6 iterations with a checkpoint after 3, then, in the same process (a second
train() call), the run resumed from that checkpoint; each worker saves its final parameters and observation
statistics of both to OUT_DIR/train<rank>.pt and OUT_DIR/resume<rank>.pt. Every episode starts from the same
state and ends at an iteration boundary, so that the resumed run's new episodes are the uninterrupted run's.
MODE `averages`: each worker holds one half of a fixed batch and saves the averaged quantities it computes
(Fisher-vector product, policy-update statistics, standardized advantages, observation statistics)."""
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
                "obs_stats": result["obs_normalizer"].state_dict()}, os.path.join(out_dir, f"{name}{rank}.pt"))


if mode == "train":
    env_id = "FixedStartPendulum-v1" if script == "trpo_continuous" else "FixedStartMountainCar-v0"
    save(trpo.train(trpo.Args(env_id=env_id, total_timesteps=2400, num_envs=1, num_steps=400,
                              critic_minibatch_size=100, update_epochs=2, save_model=True, eval_episodes=1,
                              checkpoint_every=3, normalize_reward=True)), "train")
    (checkpoint,) = glob.glob(os.path.join(out_dir, "runs", "*", "checkpoint.pt"))
    save(trpo.train(trpo.Args(resume=checkpoint)), "resume")
    trpo.leave_process_group()
else:
    dist.init_process_group("gloo")
    batch = torch.load(os.path.join(out_dir, "batch.pt"), weights_only=False)
    half = slice(rank * len(batch["obs"]) // 2, (rank + 1) * len(batch["obs"]) // 2)
    torch.manual_seed(0)
    agent = trpo.Agent(batch["obs"].shape[1], batch["n_out"], hidden_sizes=(8,))
    averaged = {"fvp": trpo.fisher_vector_product(agent, batch["obs"][half], 0.1)(batch["vector"]),
                "standardized": trpo.standardize(batch["advantages"][half])}
    args = trpo.Args(target_kl=0.01, cg_iters=10)
    averaged["update"] = trpo.trpo_policy_update(agent, batch["obs"][half], batch["actions"][half],
                                                  batch["logprobs"][half], batch["advantages"][half], args)
    averaged["policy"] = [p.detach().clone() for p in agent.actor_parameters()]
    normalizer = trpo.ObservationNormalizer(batch["obs"].shape[1], clip=5.0, synchronized=True)
    if rank == 0:  # a first synchronization: rank 0's 10 observations become every worker's statistics
        normalizer.update(batch["raw_obs"][:10])
    trpo.synchronize_statistics(normalizer, "cpu")
    for rows in np.array_split(np.arange(10, 40)[rank::2], 3):  # each worker's own observations since then
        normalizer.update(batch["raw_obs"][rows])
    trpo.synchronize_statistics(normalizer, "cpu")
    synced = normalizer.state_dict()
    averaged["obs_stats"] = (synced["mean"], synced["var"], synced["count"])
    averaged["mean_cost"] = trpo.mean_over_workers([1.0, 2.0, 3.0] if rank == 0 else [10.0], "cpu")
    torch.save(averaged, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()
