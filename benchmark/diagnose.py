"""What happens around a collapse: one training run of trpo_continuous.py with, per iteration, the quantities its
TensorBoard log lacks, written to <run folder>/diagnostics.csv beside it:

    python benchmark/diagnose.py --env-id InvertedDoublePendulum-v4 --seed 0 --total-timesteps 1000000

adv_mean, adv_std: the reward advantages before standardization; return_std: the std of the critic's targets R;
abs_error: mean |R − V| of the rollout's values; truncated, terminated: the fraction of the rollout's episode ends of
each kind; reward_scale: the reward scaler's sqrt(Var[G] + 1e-8); obs_shift: the norm of the change of the observation
statistics' mean over the iteration, in units of their std (how far the policy's inputs moved outside the trust
region); std: the policy's mean σ. Any flag of the script can follow; the run itself is the script's, unchanged."""
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

rows, current = [], {}
original_gae, original_standardize, original_update = trpo.compute_gae, trpo.standardize, trpo.trpo_policy_update
original_scaler, original_normalize = trpo.RewardScaler.__call__, trpo.normalize_obs
seen = {"obs_rms": None, "obs_mean": None, "scaler": None, "ends": [0, 0]}


def compute_gae(rewards, values, dones, *args):
    advantages, returns = original_gae(rewards, values, dones, *args)
    if "adv_mean" not in current:  # the reward critic's (the first of the iteration)
        current.update(adv_mean=float(advantages.mean()), adv_std=float(advantages.std()),
                       return_std=float(returns.std()), abs_error=float(np.abs(returns - values).mean()))
    return advantages, returns


def scaler_call(self, reward, done):
    seen["scaler"] = self
    return original_scaler(self, reward, done)


def normalize_obs(obs, obs_rms):
    seen["obs_rms"] = obs_rms
    return original_normalize(obs, obs_rms)


def trpo_policy_update(agent, *args, **kwargs):
    stats = original_update(agent, *args, **kwargs)
    rms = seen["obs_rms"]
    if rms is not None:
        mean, std = rms.mean.copy(), np.sqrt(rms.var + 1e-8)
        if seen["obs_mean"] is not None:
            current["obs_shift"] = float(np.linalg.norm((mean - seen["obs_mean"]) / std))
        seen["obs_mean"] = mean
    if seen["scaler"] is not None:
        current["reward_scale"] = float(np.sqrt(seen["scaler"].return_rms.var + 1e-8))
    current.update(std=float(agent.actor_logstd.exp().mean()), kl=stats["kl"], acceptance_step=stats["acceptance_step"])
    rows.append(dict(current))
    current.clear()
    return stats


def wrap_vector_step(envs_step):
    def step(actions):
        result = envs_step(actions)
        terminations, truncations = result[2], result[3]
        seen["ends"][0] += int(np.sum(terminations))
        seen["ends"][1] += int(np.sum(truncations & ~terminations))
        return result
    return step


original_sync_init = trpo.gym.vector.SyncVectorEnv.__init__


def sync_init(self, *args, **kwargs):
    original_sync_init(self, *args, **kwargs)
    self.step = wrap_vector_step(self.step)


trpo.compute_gae, trpo.normalize_obs, trpo.trpo_policy_update = compute_gae, normalize_obs, trpo_policy_update
trpo.RewardScaler.__call__ = scaler_call
trpo.gym.vector.SyncVectorEnv.__init__ = sync_init


def standardize(x, **kwargs):  # count the episode ends of the rollout just before its advantages are standardized
    if "terminated" not in current:
        ends = seen["ends"]
        current.update(terminated=ends[0], truncated=ends[1])
        seen["ends"] = [0, 0]
    return original_standardize(x, **kwargs)


trpo.standardize = standardize
args = trpo.parse_args(sys.argv[1:])
result = trpo.train(args)
path = os.path.join("runs", result["run_name"], "diagnostics.csv")
with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=sorted({key for row in rows for key in row}))
    writer.writeheader()
    writer.writerows(rows)
print(f"diagnostics of {len(rows)} iterations in {path}")
