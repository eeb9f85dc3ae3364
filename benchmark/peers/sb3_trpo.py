"""SB3-contrib's TRPO at our trpo_continuous.py defaults (flags change them); prints its training SPS as `SPS <n>`.
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
parser.add_argument("--num-envs", type=int, default=16)
parser.add_argument("--num-steps", type=int, default=64, help="steps per env per update")
parser.add_argument("--minibatch-size", type=int, default=1024, help="the critic's minibatch")
parser.add_argument("--update-epochs", type=int, default=20, help="critic passes per update")
parser.add_argument("--target-kl", type=float, default=0.01, help="our target_kl, a KL summed over action dimensions")
parser.add_argument("--backtrack-iters", type=int, default=10)
parser.add_argument("--log-std-init", type=float, default=-0.5)
parser.add_argument("--normalize-reward", action=argparse.BooleanOptionalAction, default=True)
parser.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=False)
args = parser.parse_args()

torch.set_num_threads(1)
envs = VecNormalize(make_vec_env(args.env_id, n_envs=args.num_envs, seed=0), norm_obs=True,
                    norm_reward=args.normalize_reward, clip_obs=5.0)
act_dim = envs.action_space.shape[0]  # SB3 averages the KL over action dimensions: ours / act_dim is theirs
model = TRPO("MlpPolicy", envs, n_steps=args.num_steps, batch_size=args.minibatch_size,
             n_critic_updates=args.update_epochs, learning_rate=(lambda left: 1e-3 * left) if args.anneal_lr else 1e-3,
             cg_max_steps=15, cg_damping=0.1, line_search_shrinking_factor=0.8, line_search_max_iter=args.backtrack_iters,
             gamma=0.99, gae_lambda=0.95, target_kl=args.target_kl / act_dim, seed=0, device="cpu",
             policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                                log_std_init=args.log_std_init))
start = time.perf_counter()
model.learn(total_timesteps=args.total_timesteps)
print(f"SPS {args.total_timesteps / (time.perf_counter() - start):.0f}")
