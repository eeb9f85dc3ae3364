"""SB3-contrib's TRPO on one env, at our trpo_continuous.py defaults; prints its training SPS as `SPS <n>`.
Runs in the virtual environment that benchmark/peers/setup.sh makes (.venv-sb3), called by benchmark/speed.py."""
import argparse
import time

import torch
from sb3_contrib import TRPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

parser = argparse.ArgumentParser()
parser.add_argument("--env-id", default="HalfCheetah-v4")
parser.add_argument("--total-timesteps", type=int, default=100_000)
parser.add_argument("--num-steps", type=int, default=20_000)
parser.add_argument("--minibatch-size", type=int, default=125, help="the critic's minibatch")
parser.add_argument("--target-kl", type=float, default=0.06, help="our target_kl, a KL summed over action dimensions")
args = parser.parse_args()

torch.set_num_threads(1)
envs = VecNormalize(make_vec_env(args.env_id, n_envs=1, seed=0), norm_obs=True, norm_reward=False, clip_obs=5.0)
act_dim = envs.action_space.shape[0]  # SB3 averages the KL over action dimensions: ours / act_dim is theirs
model = TRPO("MlpPolicy", envs, n_steps=args.num_steps, batch_size=args.minibatch_size, n_critic_updates=10,
             learning_rate=1e-3, cg_max_steps=15, cg_damping=0.1, line_search_shrinking_factor=0.8, line_search_max_iter=15,
             gamma=0.99, gae_lambda=0.95, target_kl=args.target_kl / act_dim, seed=0, device="cpu",
             policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh))
start = time.perf_counter()
model.learn(total_timesteps=args.total_timesteps)
print(f"SPS {args.total_timesteps / (time.perf_counter() - start):.0f}")
