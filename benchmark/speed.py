"""Training speed against the raw simulator, measured in one process run:

    python benchmark/speed.py --env-id HalfCheetah-v4 --total-timesteps 100000
    python benchmark/speed.py --env-id SafetyPointGoal1-v0 --num-envs 2 --async-envs
    python benchmark/speed.py --env-id HalfCheetah-v4 --peers     # after: bash benchmark/peers/setup.sh
    python benchmark/speed.py --env-id SafetyPointGoal1-v0 --workers 2

(a) raw: the same vectorized envs as training (the script's own `make_env`) stepped with random actions; (b) training: `train()` with the script's defaults for this env and vectorization. The raw
simulator is measured before and after training and averaged, so that a machine whose speed drifts
affects both sides alike. Prints training SPS / raw SPS. With --peers (sync envs), also (c) SB3-contrib's
and OmniSafe's TRPO on the same task with the same envs, batch, conjugate-gradient iterations and critic passes
(benchmark/peers/*_trpo.py, each in its own virtual environment), and prints our SPS over theirs.
With --workers N, also (d) the same training under `torchrun --nproc_per_node N` (data-parallel workers,
each with num_envs envs and the same global batch), and prints its SPS over the one-process SPS and the
scaling efficiency (that ratio / N). With --breakdown, also (e) where one iteration's time goes: the
simulator's reset and step (one env, random actions) and the script's policy and critic updates on a batch
of its size (random data, its networks). Runs are written to a temporary folder."""
import dataclasses
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
PEERS = {"SB3-contrib": "sb3", "OmniSafe": "omnisafe"}  # name: benchmark/peers/<key>_trpo.py in .venv-<key>


@dataclass
class Args:
    env_id: str = "HalfCheetah-v4"
    """the environment id"""
    script: str = "trpo_continuous"
    """the script whose `make_env` and `train` are measured (trpo_continuous or trpo_discrete)"""
    num_envs: Optional[int] = None
    """the number of environments, for every measurement (default: the script's own default)"""
    async_envs: bool = False
    """if toggled, one process per environment, for both measurements"""
    total_timesteps: int = 100_000
    """environment steps of the training measurement (include at least one update: num_steps × num_envs)"""
    num_steps: Optional[int] = None
    """steps per env per update, for ours and the peers (default: the script's own default)"""
    raw_steps: int = 20_000
    """environment steps of each raw-simulator measurement"""
    peers: bool = False
    """if toggled, also measure SB3-contrib's and OmniSafe's TRPO at the same settings (SB3-contrib not on Safety* ids)"""
    workers: int = 1
    """if above 1, also measure training with this many torchrun workers"""
    breakdown: bool = False
    """if toggled, also time the simulator's reset and step and the two updates of one iteration"""


def make_vector_env(module, script_args):
    """The vector env that train() builds."""
    thunks = [module.make_env(script_args.env_id, i, False, "speed") for i in range(script_args.num_envs)]
    return (gym.vector.AsyncVectorEnv if script_args.async_envs else gym.vector.SyncVectorEnv)(thunks)


def raw_sps(module, script_args, steps: int) -> float:
    """Steps per second of the vectorized envs under uniformly random actions (the simulator's own speed)."""
    envs = make_vector_env(module, script_args)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps // script_args.num_envs):
        envs.step(envs.action_space.sample())
    elapsed = time.perf_counter() - start
    envs.close()
    return steps // script_args.num_envs * script_args.num_envs / elapsed


def simulator_seconds(module, script_args, episodes: int = 3) -> tuple:
    """(mean seconds of a reset, mean seconds of a step) of one env under random actions."""
    env = module.make_env(script_args.env_id, 0, False, "speed")()
    env.reset(seed=0)
    env.action_space.seed(0)
    resets, steps, step_time = [], 0, 0.0
    for episode in range(episodes):
        start = time.perf_counter()
        env.reset(seed=episode + 1)
        resets.append(time.perf_counter() - start)
        done = False
        start = time.perf_counter()
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done, steps = terminated or truncated, steps + 1
        step_time += time.perf_counter() - start
    env.close()
    return float(np.mean(resets)), step_time / steps


def update_seconds(module, script_args) -> tuple:
    """(seconds of the policy update, seconds of the critic update) on one batch of random data, with the
    script's networks, settings and batch size."""
    args = module.validate_args(dataclasses.replace(script_args))
    torch.manual_seed(0)
    torch.set_num_threads(1)  # as train() does
    envs = make_vector_env(module, args)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    space = envs.single_action_space
    envs.close()
    n_out = int(space.n) if hasattr(space, "n") else int(np.prod(space.shape))
    agent = module.Agent(obs_dim, n_out, args)
    batch_size = args.num_envs * args.num_steps
    obs = torch.randn(batch_size, obs_dim)
    with torch.no_grad():
        dist = agent.distribution(obs)
        actions = dist.sample()
        logprobs = dist.log_prob(actions)
    advantages, returns = torch.randn(batch_size), torch.randn(batch_size)
    critic_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.critic_lr)
    start = time.perf_counter()
    module.trpo_policy_update(agent, obs, actions, logprobs, advantages, args)
    policy = time.perf_counter() - start
    start = time.perf_counter()
    if module.__name__ == "trpo_continuous":
        module.critic_update([agent.critic], [critic_optimizer], [returns], obs, args)
    else:
        module.critic_update(agent.critic, critic_optimizer, returns, obs, args)
    return policy, time.perf_counter() - start


def peer_sps(key: str, args: Args, script_args) -> float:
    """Training SPS of one peer's TRPO at our settings, run by its script in its own virtual environment."""
    python = os.path.join(REPO, "benchmark", "peers", f".venv-{key}", "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"error: {python} is missing; run: bash benchmark/peers/setup.sh")
    command = [python, os.path.join(REPO, "benchmark", "peers", f"{key}_trpo.py"), "--env-id", args.env_id,
               "--total-timesteps", str(args.total_timesteps), "--num-envs", str(script_args.num_envs),
               "--num-steps", str(script_args.num_steps), "--minibatch-size", str(script_args.critic_minibatch_size),
               "--update-epochs", str(script_args.update_epochs), "--target-kl", str(script_args.target_kl)]
    command += ["--normalize-reward"] * script_args.normalize_reward + ["--anneal-lr"] * script_args.anneal_lr
    if key == "sb3":  # OmniSafe has no option for these two
        command += ["--no-normalize-reward"] * (not script_args.normalize_reward) + ["--no-anneal-lr"] * (not script_args.anneal_lr)
        command += ["--backtrack-iters", str(script_args.backtrack_iters), "--log-std-init", str(script_args.log_std_init)]
    output = subprocess.run(command, capture_output=True, text=True).stdout
    found = re.findall(r"^SPS (\d+)$", output, re.MULTILINE)
    if not found:
        raise SystemExit(f"error: {' '.join(command)} printed no SPS line; run it by hand to see why")
    return float(found[-1])


def torchrun_sps(args: Args, script_args, workers: int) -> float:
    """Training SPS with `workers` data-parallel processes (rank 0's last progress line)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(workers),
               os.path.join(REPO, f"{args.script}.py"), "--env-id", args.env_id, "--num-envs", str(script_args.num_envs),
               "--total-timesteps", str(args.total_timesteps), "--num-steps", str(script_args.num_steps),
               "--exp-name", "speed"] + ["--async-envs"] * args.async_envs
    done = subprocess.run(command, capture_output=True, text=True)
    found = re.findall(r"^step \d+/\d+ \| SPS (\d+)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        raise SystemExit(f"error: {' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(found[-1])


def main(args: Args):
    if args.peers and (args.async_envs or args.script != "trpo_continuous"):
        raise SystemExit("error: --peers measures trpo_continuous with sync envs: drop --script and --async-envs")
    if args.workers < 1:
        raise SystemExit(f"error: --workers must be positive, got {args.workers}")
    if args.script not in ("trpo_continuous", "trpo_discrete"):
        raise SystemExit(f"error: --script must be trpo_continuous or trpo_discrete, not {args.script}")
    module = importlib.import_module(args.script)
    script_args = dataclasses.replace(module.Args(), env_id=args.env_id, async_envs=args.async_envs,
                                      total_timesteps=args.total_timesteps, exp_name="speed")
    if args.num_envs is not None:
        script_args = dataclasses.replace(script_args, num_envs=args.num_envs)
    if args.raw_steps < script_args.num_envs:
        raise SystemExit(f"error: --raw-steps must be at least the number of envs ({script_args.num_envs})")
    if args.num_steps is not None:
        script_args = dataclasses.replace(script_args, num_steps=args.num_steps)
    try:  # the script's own checks: env id, action space, sizes
        module.validate_args(script_args)
    except module.UsageError as error:
        raise SystemExit(f"error: {error}") from None
    start_dir = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        raw_before = raw_sps(module, script_args, args.raw_steps)
        training = module.train(script_args)["sps"]
        raw_after = raw_sps(module, script_args, args.raw_steps)
        raw = (raw_before + raw_after) / 2
        print(f"{args.env_id}, {script_args.num_envs} env(s) × {script_args.num_steps} steps{' async' if args.async_envs else ''}: "
              f"raw {raw:.0f} SPS (before {raw_before:.0f}, after {raw_after:.0f}), training {training} SPS, "
              f"training / raw = {training / raw:.2f}", flush=True)
        for name, key in PEERS.items() if args.peers else []:
            if key == "sb3" and args.env_id.startswith("Safety"):
                print(f"{name}: not run (its environment has no Safety-Gymnasium)")
                continue
            if key == "omnisafe" and not args.env_id.startswith("Safety") and script_args.num_envs > 1:
                print(f"{name}: not run (its Gymnasium MuJoCo envs run one env only: --num-envs 1)")
                continue
            theirs = peer_sps(key, args, script_args)
            print(f"{name} TRPO: {theirs:.0f} SPS; ours / theirs = {training / theirs:.2f}", flush=True)
        if args.workers > 1:
            parallel = torchrun_sps(args, script_args, args.workers)
            print(f"{args.workers} workers: {parallel:.0f} SPS, {parallel / training:.2f}× one process, "
                  f"scaling efficiency {parallel / training / args.workers:.2f}", flush=True)
        if args.breakdown:
            reset, step = simulator_seconds(module, script_args)
            policy, critic = update_seconds(module, script_args)
            steps = script_args.num_steps * script_args.num_envs
            print(f"one iteration ({steps} steps in all): the simulator's steps {steps * step:.2f} s "
                  f"({step * 1e3:.3f} ms each) and a reset {reset:.2f} s per episode; policy update {policy:.2f} s; "
                  f"critic update {critic:.2f} s", flush=True)
        os.chdir(start_dir)

if __name__ == "__main__":
    main(tyro.cli(Args))
