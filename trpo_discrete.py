# Trust Region Policy Optimization with a categorical policy, in one file (safe RL: trpo_continuous.py).
# Paper: Schulman et al. 2015, https://arxiv.org/abs/1502.05477. Specification: OmniSafe's TRPO page. Guide: README.md.
import atexit
import copy
import dataclasses
import glob
import importlib.util
import math
import os
import random
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Tuple, get_args, get_type_hints

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import typeguard
import tyro
import yaml
from torch.distributions import Categorical
from torch.nn.utils import parameters_to_vector, vector_to_parameters


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment (part of the run name)
    seed: int = 0  # the seed of Python, NumPy, torch and the environments
    cuda: bool = False  # if toggled, train on the GPU when there is one (these small networks run fast on the CPU)
    track: bool = False  # if toggled, track the run with Weights and Biases (project: $WANDB_PROJECT, else trpo)
    capture_video: bool = False  # if toggled, record the first env's episodes to videos/<run_name> (needs moviepy)
    save_model: bool = False  # if toggled, save the final model to runs/<run_name>/<exp_name>.model and evaluate it
    eval_episodes: int = 10  # episodes of the deterministic evaluation (after --save-model, or of --eval-model)
    eval_model: Optional[str] = None  # a .model or checkpoint.pt to evaluate instead of training (on --env-id if given)
    config: Optional[str] = None  # a yaml file of these fields (a preset, a run's args.yaml): defaults for the flags
    checkpoint_every: int = 10  # write runs/<run_name>/checkpoint.pt every this many iterations (0: never), and last
    resume: Optional[str] = None  # a checkpoint.pt to continue, with its run's arguments (other flags are ignored)

    # Algorithm: the defaults are SB3-contrib's CartPole settings (benchmark/README.md)
    env_id: Optional[str] = None  # a Gymnasium id with a Discrete action space (unset: CartPole-v1)
    total_timesteps: int = 100_000  # environment steps of the whole run, over all envs and workers
    num_envs: int = 2  # the environments stepped together (by each worker, under torchrun)
    async_envs: bool = False  # if toggled, each environment steps in its own process (for slow simulators)
    num_steps: int = 512  # steps of each environment per rollout (shared by torchrun's workers), one update each
    gamma: float = 0.99  # the discount factor γ
    gae_lambda: float = 0.98  # the λ of generalized advantage estimation
    target_kl: float = 0.01  # δ: the largest mean KL(π_old ‖ π_new) of an update
    cg_iters: int = 15  # the conjugate gradient iterations for x ≈ F⁻¹g
    cg_damping: float = 1e-3  # the damping added to the Fisher matrix: F + damping·I
    backtrack_coef: float = 0.8  # the line search tries the step fractions backtrack_coef^i, i = 0, 1, ...
    backtrack_iters: int = 15  # the most steps the line search tries before it rejects the update
    fvp_sample_freq: int = 1  # the Fisher-vector product uses every fvp_sample_freq-th observation of the batch
    critic_lr: float = 1e-3  # the learning rate of the critic's Adam
    anneal_lr: bool = False  # if toggled, the critic's learning rate decays linearly to 0 (OmniSafe's linear_lr_decay)
    update_epochs: int = 20  # the passes over the batch that fit the critic
    critic_minibatch_size: int = 128  # each pass splits the batch into ceil(batch / this) minibatches of equal size ±1
    critic_l2_coef: float = 1e-3  # the coefficient of the L2 penalty on the critic's weights
    max_grad_norm: float = 40.0  # the critic's gradients are clipped to this norm
    normalize_obs: bool = True  # if toggled, observations are standardized by running statistics and clipped to ±5
    normalize_reward: bool = False  # if toggled, rewards are divided by the running std of the discounted return
    hidden_sizes: Tuple[int, ...] = (64, 64)  # the hidden layers of the policy and of the critic (separate networks)
    activation: Literal["tanh", "relu"] = "tanh"  # the activation of the hidden layers
    weight_init: Literal["orthogonal", "pytorch"] = "orthogonal"  # CleanRL's, or nn.Linear's own (OmniSafe's)

    def __post_init__(self):  # from Python, a yaml file or a checkpoint: a value its flag would refuse is refused
        check_types(vars(self))


LAUNCH_ARGUMENTS = ("config", "resume", "eval_model")  # how a run was started: never in its args.yaml


# === Environments, with each episode's return, length and cost (no discrete-action task of Gymnasium or
# Safety-Gymnasium reports a cost; an env that reports info["cost"] has its episodic cost logged)
class RecordEpisodeCost(gym.Wrapper):
    """At the end of an episode of an env that reports a per-step info["cost"], info["episode_cost"] is their sum."""

    def reset(self, **kwargs):
        self.episode_cost = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "cost" in info:
            self.episode_cost += float(info["cost"])
            if terminated or truncated:
                info["episode_cost"] = self.episode_cost
        return obs, reward, terminated, truncated, info

def make_env(env_id: str, idx: int, capture_video: bool, run_name: str) -> Callable[[], gym.Env]:
    def thunk():
        env = gym.make(env_id, render_mode="rgb_array" if capture_video and idx == 0 else None)
        if capture_video and idx == 0:
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        return gym.wrappers.RecordEpisodeStatistics(RecordEpisodeCost(env))
    return thunk


# === Normalization: running statistics of the observations and of the discounted return
class RunningMeanStd:
    """Running mean μ and variance σ² of a stream of batches (Chan et al.'s merge), in NumPy: cheaper than torch."""

    def __init__(self, shape=(), count: float = 1e-4):
        self.mean, self.var, self.count = np.zeros(shape, np.float64), np.ones(shape, np.float64), count

    def update(self, batch: np.ndarray):
        count = batch.shape[0]
        batch_mean = np.add.reduce(batch, axis=0) / count  # batch.mean(0) and batch.var(0) without their overhead
        self.update_from_moments(batch_mean, np.add.reduce((batch - batch_mean) ** 2, axis=0) / count, count)

    def update_from_moments(self, batch_mean, batch_var, batch_count):
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count
                    + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": torch.as_tensor(self.mean), "var": torch.as_tensor(self.var), "count": self.count}

    def load_state_dict(self, state: dict) -> "RunningMeanStd":
        self.mean, self.var, self.count = state["mean"].numpy(), state["var"].numpy(), float(state["count"])
        return self

def normalize_obs(obs: np.ndarray, obs_rms: Optional[RunningMeanStd]) -> np.ndarray:
    """clip((s − μ) / √(σ² + 1e-8), −5, 5) as float32 (the clip is OmniSafe's); s itself when obs_rms is None."""
    if obs_rms is None:
        return obs.astype(np.float32)
    return np.clip((obs - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -5.0, 5.0).astype(np.float32)

class RewardScaler:
    """r̃_t = r_t / √(Var[G] + 1e-8), G_t = γG_{t−1} + r_t each env's discounted return (0 at an episode's start)."""

    def __init__(self, num_envs: int, gamma: float):
        self.gamma, self.discounted_return, self.return_rms = gamma, np.zeros(num_envs), RunningMeanStd()

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.discounted_return = self.discounted_return * self.gamma + reward
        self.return_rms.update(self.discounted_return)
        scaled = reward / np.sqrt(self.return_rms.var + 1e-8)
        self.discounted_return[done] = 0.0
        return scaled


# === The agent: the policy and the critic, separate networks
def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer

def mlp(in_dim: int, out_dim: int, out_std: float, args: Args) -> nn.Sequential:
    """An MLP of args.hidden_sizes; with orthogonal initialization, out_std scales its last layer."""
    init = layer_init if args.weight_init == "orthogonal" else lambda layer, std=None: layer
    layers, last = [], in_dim
    for size in args.hidden_sizes:
        layers += [init(nn.Linear(last, size)), {"tanh": nn.Tanh, "relu": nn.ReLU}[args.activation]()]
        last = size
    return nn.Sequential(*layers, init(nn.Linear(last, out_dim), std=out_std))

class Agent(nn.Module):
    """π_θ(a|s) = softmax(logits_θ(s)) and a critic V_φ(s), both on normalized observations."""

    def __init__(self, obs_dim: int, n_actions: int, args: Args):
        super().__init__()
        self.critic = mlp(obs_dim, 1, 1.0, args)
        self.actor = mlp(obs_dim, n_actions, 0.01, args)  # 0.01: the first policy is near uniform

    def actor_parameters(self) -> list:
        """θ, the parameters that TRPO updates."""
        return list(self.actor.parameters())

    def categorical(self, logits: torch.Tensor) -> Categorical:
        return Categorical(logits=logits, validate_args=False)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        return self.categorical(self.actor(obs))

def values_of(critic: nn.Module, obs: np.ndarray, device) -> np.ndarray:
    """A critic's V(s) of a batch of normalized observations, as a NumPy array."""
    with torch.inference_mode():
        return critic(torch.from_numpy(obs).to(device)).squeeze(-1).cpu().numpy()


# === The mathematics of the update, one function per equation
def add_truncation_bootstrap(rewards, truncated, final_values, gamma: float) -> np.ndarray:
    """r_t ← r_t + γV(s_final) where the time limit truncated the episode, whose return goes on in the MDP."""
    return rewards + gamma * final_values * truncated

def compute_gae(rewards, values, dones, next_value, next_done, gamma: float, gae_lambda: float) -> tuple:
    """GAE over a (num_steps, num_envs) rollout, dones[t] = 1 where observation t begins an episode (CleanRL's):
    δ_t = r_t + γ(1 − d_{t+1})V(s_{t+1}) − V(s_t), Â_t = δ_t + γλ(1 − d_{t+1})Â_{t+1}; returns (Â, R = Â + V)."""
    advantages, last_advantage = np.zeros_like(values), 0.0
    for t in reversed(range(len(rewards))):  # a NumPy loop: per-element torch calls would cost more
        if t == len(rewards) - 1:
            next_nonterminal, next_values = 1.0 - next_done, next_value
        else:
            next_nonterminal, next_values = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_values * next_nonterminal - values[t]
        advantages[t] = last_advantage = delta + gamma * gae_lambda * next_nonterminal * last_advantage
    return advantages, advantages + values

def standardize(x: torch.Tensor) -> torch.Tensor:
    """Â ← (Â − mean Â) / (std Â + 1e-8)."""
    return (x - x.mean()) / (x.std() + 1e-8)

def surrogate_objective(dist: Categorical, actions, old_logprobs, advantages) -> torch.Tensor:
    """L(θ) = mean_t[π_θ(a_t|s_t) / π_old(a_t|s_t) · Â_t], the importance-sampled surrogate (spec eq. 4)."""
    return (torch.exp(dist.log_prob(actions) - old_logprobs) * advantages).mean()

def mean_kl(old_dist: Categorical, new_dist: Categorical) -> torch.Tensor:
    """D̄_KL(θ_old, θ) = mean over states of KL(π_old(·|s) ‖ π_θ(·|s)) = Σ_a π_old(a|s) log(π_old(a|s) / π_θ(a|s))."""
    return torch.distributions.kl_divergence(old_dist, new_dist).mean()

def flat_grad(output: torch.Tensor, params, **kwargs) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(output, params, **kwargs)])

def fisher_vector_product(agent: Agent, obs: torch.Tensor, damping: float) -> Callable:
    """v ↦ (F + damping·I)v, F = ∇²_θ D̄_KL(θ_old, θ) at θ_old (the Fisher matrix), by double backpropagation:
    Fv = ∇_θ[(∇_θ D̄_KL)ᵀv]. The graph of ∇_θ D̄_KL is built once; each product is one backward pass through it."""
    params = agent.actor_parameters()
    with torch.no_grad():
        old_dist = agent.distribution(obs)
    grad_kl = flat_grad(mean_kl(old_dist, agent.distribution(obs)), params, create_graph=True)
    return lambda v: flat_grad(grad_kl @ v, params, retain_graph=True) + damping * v

def conjugate_gradient(Avp: Callable, b: torch.Tensor, iters: int, residual_tol: float = 1e-10) -> torch.Tensor:
    """Solves Ax = b, A symmetric positive-definite and known by its products Ap, in ≤ iters steps from x = 0."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    r_dot_r = r @ r
    for _ in range(iters):
        Ap = Avp(p)
        alpha = r_dot_r / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        new_r_dot_r = r @ r
        if new_r_dot_r.sqrt() < residual_tol:
            break
        p = r + (new_r_dot_r / r_dot_r) * p
        r_dot_r = new_r_dot_r
    return x

def max_step_size(xHx: float, target_kl: float) -> float:
    """β = √(2δ / xᵀHx): the step βx whose quadratic-model KL, ½(βx)ᵀH(βx), equals δ."""
    return math.sqrt(2.0 * target_kl / xHx)

def backtracking_line_search(params, old_params, full_step, evaluate: Callable, old_objective: float,
                             args: Args) -> tuple:
    """Tries θ = θ_old + backtrack_coef^i · full_step, i < backtrack_iters, and keeps the first whose surrogate L is
    finite and improved and whose mean KL is ≤ δ; else restores θ_old exactly. evaluate() gives (L, D̄_KL) at the
    parameters set. Returns (acceptance step i + 1, or 0; the step fraction; L; KL; the steps refused per reason)."""
    rejected = {"not_finite": 0, "no_improvement": 0, "kl": 0}
    for i in range(args.backtrack_iters):
        step_fraction = args.backtrack_coef**i
        vector_to_parameters(old_params + step_fraction * full_step, params)
        objective, kl = evaluate()
        if not (math.isfinite(objective) and math.isfinite(kl)):
            rejected["not_finite"] += 1
        elif objective <= old_objective:
            rejected["no_improvement"] += 1
        elif kl > args.target_kl:
            rejected["kl"] += 1
        else:
            return i + 1, step_fraction, objective, kl, rejected
    vector_to_parameters(old_params, params)
    return 0, 0.0, old_objective, 0.0, rejected

def trpo_policy_update(agent: Agent, obs, actions, old_logprobs, advantages, args: Args) -> dict:
    """One TRPO step: g = ∇L, x ≈ F⁻¹g by conjugate gradient, β = √(2δ / xᵀFx), the line search along βx. A zero or
    non-finite g, or xᵀFx ≤ 0, skips the update with a warning. Returns the step's statistics."""
    params = agent.actor_parameters()
    with torch.no_grad():
        old_dist = agent.distribution(obs)  # π_old, fixed while θ moves
    objective = surrogate_objective(agent.distribution(obs), actions, old_logprobs, advantages)
    g = flat_grad(objective, params)
    stats = dict(grad_norm=g.norm().item(), xHx=0.0, step_norm=0.0, acceptance_step=0, expected_improvement=0.0,
                 actual_improvement=0.0, kl=0.0, rejected_not_finite=0, rejected_no_improvement=0, rejected_kl=0)
    if not torch.isfinite(g).all() or not g.any():  # a zero g: e.g. equal advantages, all 0 once standardized
        warnings.warn(f"TRPO: the policy gradient is {'not finite' if g.any() else 'zero'}; policy update skipped")
        return stats
    Fvp = fisher_vector_product(agent, obs[:: args.fvp_sample_freq], args.cg_damping)
    x = conjugate_gradient(Fvp, g, args.cg_iters)
    xHx = stats["xHx"] = (x @ Fvp(x)).item()
    if not (math.isfinite(xHx) and xHx > 0):
        warnings.warn(f"TRPO: xᵀFx = {xHx} is not positive; policy update skipped")
        return stats
    full_step = max_step_size(xHx, args.target_kl) * x

    def evaluate():
        with torch.no_grad():
            dist = agent.distribution(obs)
            values = [surrogate_objective(dist, actions, old_logprobs, advantages), mean_kl(old_dist, dist)]
            return torch.stack(values).tolist()

    old_objective = objective.item()
    acceptance_step, fraction, new_objective, kl, rejected = backtracking_line_search(
        params, parameters_to_vector(params).detach(), full_step, evaluate, old_objective, args)
    stats.update(acceptance_step=acceptance_step, kl=kl, step_norm=(fraction * full_step).norm().item(),
                 expected_improvement=fraction * (g @ full_step).item(),  # the linear model's g·Δθ
                 actual_improvement=new_objective - old_objective)
    return stats | {f"rejected_{reason}": count for reason, count in rejected.items()}

def critic_update(critics: list, optimizers: list, returns: list, obs: torch.Tensor, args: Args) -> list:
    """Fits each critic V_φ to its returns R: update_epochs passes over shuffled minibatches (shared by the critics),
    each an Adam step on mean (V_φ(s) − R)² + critic_l2_coef·‖φ‖², the gradient's norm clipped to max_grad_norm.
    Returns each critic's mean squared error in the last pass."""
    num_minibatches = -(-len(obs) // args.critic_minibatch_size)
    for _ in range(args.update_epochs):
        squared_errors = [[] for _ in critics]
        for batch in torch.randperm(len(obs), device=obs.device).tensor_split(num_minibatches):
            for critic, optimizer, target, errors in zip(critics, optimizers, returns, squared_errors):
                params = list(critic.parameters())
                mse = (critic(obs[batch]).squeeze(-1) - target[batch]).pow(2).mean()
                loss = mse + args.critic_l2_coef * sum(p.pow(2).sum() for p in params)
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                optimizer.step()
                errors.append(mse.item())
    return [float(np.mean(errors)) for errors in squared_errors]

def linear_schedule(start: float, end: float, progress: float) -> float:
    """start + (end − start)·progress, for progress from 0 (the first iteration) to 1."""
    return start + (end - start) * progress

def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[R − V] / Var[R]: 1 for a perfect critic, 0 for one no better than a constant."""
    return 1 - ((returns - values).std() / returns.std()).item() ** 2


# === Training: each iteration is a rollout, the advantages, one TRPO step, the critic's fit, the logs, a checkpoint
def train(args: Args) -> dict:
    """Trains one run, alone or as a torchrun worker (rank 0 learns, logs and saves), checking everything before writing."""
    path = args.resume or interrupted_run()
    checkpoint = load_checkpoint(path) if path else None
    args = validate_args(Args(**checkpoint["args"], resume=path) if checkpoint else args)
    workers, rank, device = start_workers(args.cuda)
    run_name = from_learner(f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}")  # rank 0's clock
    run_name, global_step = (checkpoint["run_name"], checkpoint["global_step"]) if checkpoint else (run_name, 0)
    run_dir = os.path.dirname(os.path.abspath(path)) if checkpoint else f"runs/{run_name}"

    # Seeding: each worker its own streams; a resumed run draws new ones from its step count
    random.seed(args.seed + rank + global_step)
    np.random.seed(args.seed + rank + global_step)
    torch.manual_seed(args.seed + rank + global_step)
    torch.set_num_threads(1)  # the fastest for these small networks

    # The envs, the agent, the statistics: new, or as a checkpoint saved them
    envs = (gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv)(
        [make_env(args.env_id, i, args.capture_video, run_name) for i in range(args.num_envs)])
    obs_dim, n_actions = int(np.prod(envs.single_observation_space.shape)), int(envs.single_action_space.n)
    agent = Agent(obs_dim, n_actions, args).to(device)
    critics = [agent.critic]
    # fused Adam: one kernel for all of a critic's parameters, faster on these small networks
    optimizers = [torch.optim.Adam(critic.parameters(), lr=args.critic_lr, fused=True) for critic in critics]
    obs_rms = RunningMeanStd(obs_dim) if args.normalize_obs else None
    reward_scaler = RewardScaler(args.num_envs, args.gamma) if args.normalize_reward else None
    if checkpoint is not None:
        restore_training_state(checkpoint, agent, optimizers, obs_rms, reward_scaler)
    elif workers > 1:
        share_learner_state(agent, obs_rms)  # rank 0's initial weights for every worker
    # the statistics the learner sent last, and this worker's observations since (what it sends the learner)
    synced_obs_rms, own_obs_rms = copy.deepcopy(obs_rms), RunningMeanStd(obs_dim, count=0.0)

    # Rollout storage, preallocated in NumPy: per-step writes into torch tensors cost more than the writes
    num_steps, num_iterations = args.num_steps // workers, args.total_timesteps // (args.num_envs * args.num_steps)
    obs = np.zeros((num_steps, args.num_envs, obs_dim), np.float32)
    actions = np.zeros((num_steps, args.num_envs), np.int64)
    action_logits = np.zeros((num_steps, args.num_envs, n_actions), np.float32)
    rewards = np.zeros((num_steps, args.num_envs), np.float32)
    dones = np.zeros((num_steps, args.num_envs), np.float32)

    writer = open_logs(args, run_name, run_dir, global_step if checkpoint else None) if rank == 0 else None
    # Episodes run on across updates: the envs are reset once, here. Env i of worker r is seeded
    # seed + r·num_envs + i (+ the step count on resume): no two envs of a run start the same episodes.
    raw_obs, _ = envs.reset(seed=args.seed + rank * args.num_envs + global_step)
    next_raw_obs, next_done = raw_obs.reshape(args.num_envs, obs_dim), np.zeros(args.num_envs, np.float32)
    if obs_rms is not None and checkpoint is None:  # the statistics start from the first observations
        own_obs_rms.update(next_raw_obs)
        obs_rms.update_from_moments(own_obs_rms.mean, own_obs_rms.var, own_obs_rms.count)
    recent_returns = deque(maxlen=20)
    start_time, start_step, last_print = time.time(), global_step, 0.0
    for iteration in range(checkpoint["iteration"] + 1 if checkpoint else 1, num_iterations + 1):
        episodes = []  # (step, return, length, cost) of each episode that ends in this rollout

        # Rollout: num_steps steps of every env with the current policy
        for step in range(num_steps):
            global_step += args.num_envs * workers
            obs[step] = normalize_obs(next_raw_obs, obs_rms)
            dones[step] = next_done
            with torch.inference_mode():  # log π_old comes from the stored logits after the rollout
                logits = agent.actor(torch.from_numpy(obs[step]).to(device))
                actions[step] = agent.categorical(logits).sample().cpu().numpy()
                action_logits[step] = logits.cpu().numpy()
            raw_obs, reward, terminations, truncations, infos = envs.step(actions[step])
            done = terminations | truncations
            reward = reward_scaler(reward, done) if reward_scaler is not None else reward
            truncated = truncations & ~terminations
            if truncated.any():  # the time-limit bootstrap, from the critic's value of s_final
                final_obs = normalize_obs(np.stack(infos["final_observation"][truncated]).reshape(-1, obs_dim), obs_rms)
                final_values = np.zeros(args.num_envs, np.float32)
                final_values[truncated] = values_of(agent.critic, final_obs, device)
                reward = add_truncation_bootstrap(reward, truncated, final_values, args.gamma)
            rewards[step] = reward
            next_raw_obs, next_done = raw_obs.reshape(args.num_envs, obs_dim), done.astype(np.float32)
            if obs_rms is not None:  # OmniSafe's: the statistics move at every step
                obs_rms.update(next_raw_obs)
                if workers > 1:
                    own_obs_rms.update(next_raw_obs)
            for info in infos["final_info"][infos["_final_info"]] if "final_info" in infos else []:
                episode = info["episode"]
                episodes.append((global_step, episode["r"].item(), episode["l"].item(), info.get("episode_cost")))

        # Advantages: GAE over this worker's envs, from the critic's values of the rollout in one batched call
        values = values_of(agent.critic, obs.reshape(-1, obs_dim), device).reshape(num_steps, args.num_envs)
        next_value = values_of(agent.critic, normalize_obs(next_raw_obs, obs_rms), device)
        advantages, returns = compute_gae(rewards, values, dones, next_value, next_done, args.gamma, args.gae_lambda)
        batch = {"obs": obs.reshape(-1, obs_dim), "actions": actions.reshape(-1),
                 "logits": action_logits.reshape(-1, n_actions), "values": values.reshape(-1),
                 "advantages": advantages.reshape(-1), "returns": returns.reshape(-1)}
        if workers > 1:  # the learner gets every worker's batch, episodes and observations' moments
            batch, episodes, obs_rms, synced_obs_rms = to_learner(batch, episodes, own_obs_rms, synced_obs_rms)
            own_obs_rms = RunningMeanStd(obs_dim, count=0.0)

        # The learner (rank 0): the update (one TRPO step on the policy, the critic's fit), the logs, a checkpoint
        if rank == 0:
            lr = linear_schedule(args.critic_lr, 0.0, (iteration - 1) / num_iterations) if args.anneal_lr else None
            b = {key: torch.from_numpy(value).to(device) for key, value in batch.items()}
            trpo_stats, critic_losses = update(agent, optimizers, b, args, lr)

            # Logs: the episodes, CleanRL's charts, the critic's fit, the TRPO step, the policy
            sps = int((global_step - start_step) / (time.time() - start_time))
            for step_ended, episodic_return, length, cost in episodes:
                recent_returns.append(episodic_return)
                writer.add_scalar("charts/episodic_return", episodic_return, step_ended)
                writer.add_scalar("charts/episodic_length", length, step_ended)
                if cost is not None:
                    writer.add_scalar("charts/episodic_cost", cost, step_ended)
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("charts/learning_rate", optimizers[0].param_groups[0]["lr"], global_step)
            writer.add_scalar("losses/value_loss", critic_losses[0], global_step)
            writer.add_scalar("losses/explained_variance",  # of the values before the critic's fit
                              explained_variance(b["values"], b["returns"]), global_step)
            for name, value in trpo_stats.items():
                writer.add_scalar(f"trpo/{name}", value, global_step)
            with torch.no_grad():
                writer.add_scalar("policy/entropy", agent.distribution(b["obs"]).entropy().mean().item(), global_step)
            if time.time() - last_print >= 3.0 or iteration == num_iterations:
                last_print = time.time()
                print(f"step {global_step}/{args.total_timesteps} | SPS {sps} | ETA "
                      f"{(args.total_timesteps - global_step) / max(sps, 1) / 60:.1f} min"
                      + (f" | return {np.mean(recent_returns):.2f}" if recent_returns else ""), flush=True)

            # Checkpoint: every checkpoint_every iterations and at the end
            last = iteration == num_iterations
            if last or args.checkpoint_every and iteration % args.checkpoint_every == 0:
                state = training_state(args, run_name, global_step, iteration, agent, optimizers, obs_rms, reward_scaler)
                save_checkpoint(state, f"{run_dir}/checkpoint.pt")
                if args.save_model and last:
                    save_checkpoint(state, f"{run_dir}/{args.exp_name}.model")
        if workers > 1:  # every worker gets the learner's parameters and statistics
            obs_rms = share_learner_state(agent, obs_rms)

    envs.close()
    result = {"global_step": global_step, "run_name": run_name, "agent": agent, "obs_rms": obs_rms,
              "episodic_return": float(np.mean(recent_returns)) if recent_returns else float("nan"),
              "sps": int((global_step - start_step) / (time.time() - start_time))}
    if rank == 0:
        if args.save_model:
            result["model_path"] = f"{run_dir}/{args.exp_name}.model"
            print(f"model saved to {result['model_path']}")
            evaluation = evaluate(result["model_path"], args.env_id, args.eval_episodes, args.seed, str(device))
            for episode, episodic_return in enumerate(evaluation["returns"]):
                writer.add_scalar("eval/episodic_return", episodic_return, episode)
            result["eval_return"] = evaluation["mean_return"]
        writer.close()
        if args.track:
            import wandb
            wandb.finish()
    return result

def update(agent: Agent, optimizers: list, batch: dict, args: Args, critic_lr: Optional[float] = None) -> tuple:
    """The learner's update of a batch: Â standardized, one TRPO step, the critic's fit (at critic_lr, if given)."""
    with torch.no_grad():
        old_logprobs = agent.categorical(batch["logits"]).log_prob(batch["actions"])
    trpo_stats = trpo_policy_update(agent, batch["obs"], batch["actions"], old_logprobs,
                                    standardize(batch["advantages"]), args)
    for optimizer in optimizers if critic_lr is not None else []:
        optimizer.param_groups[0]["lr"] = critic_lr
    return trpo_stats, critic_update([agent.critic], optimizers, [batch["returns"]], batch["obs"], args)

def open_logs(args: Args, run_name: str, run_dir: str, resumed_step: Optional[int]):
    """TensorBoard's writer (which drops what a stopped run logged after its checkpoint), wandb's run, args.yaml."""
    if args.track:
        import wandb
        wandb.init(project=os.environ.get("WANDB_PROJECT", "trpo"), sync_tensorboard=True, name=run_name,
                   config=training_arguments(args), monitor_gym=True, save_code=True)
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(run_dir, purge_step=resumed_step + 1 if resumed_step is not None else None)
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(
        f"|{key}|{value}|" for key, value in training_arguments(args).items()))
    with open(f"{run_dir}/args.yaml", "w") as f:
        yaml.safe_dump(training_arguments(args), f, sort_keys=False)
    if "TORCHELASTIC_RUN_ID" in os.environ:  # where torchrun's restarted workers find the run (interrupted_run)
        open(f"{run_dir}/.torchrun-{os.environ['TORCHELASTIC_RUN_ID']}", "w").close()
    return writer


# === Checkpoints, models and evaluation: plain data (tensors, numbers, strings, lists, dicts), which
# torch.load(weights_only=True) reads without running code from the file. A model is the run's last checkpoint.
def training_arguments(args: Args) -> dict:
    """The arguments that say how a run trains (not how it was launched): its args.yaml and checkpoints hold them."""
    return {name: value for name, value in dataclasses.asdict(args).items() if name not in LAUNCH_ARGUMENTS}

def training_state(args: Args, run_name: str, global_step: int, iteration: int, agent: Agent, optimizers: list,
                   obs_rms, reward_scaler) -> dict:
    """All a run needs to go on (the weights, the critics' optimizers, the statistics, ...), but the episodes in
    progress: a resumed run starts new ones."""
    return {"format": "trpo_discrete", "args": training_arguments(args), "run_name": run_name,
            "global_step": global_step, "iteration": iteration, "agent": agent.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in optimizers],
            "obs_rms": obs_rms.state_dict() if obs_rms is not None else None,
            "return_rms": reward_scaler.return_rms.state_dict() if reward_scaler is not None else None}

def restore_training_state(checkpoint: dict, agent: Agent, optimizers: list, obs_rms, reward_scaler):
    """Loads what training_state saved into a new run's agent, optimizers and statistics."""
    agent.load_state_dict(checkpoint["agent"])
    for optimizer, state in zip(optimizers, checkpoint["optimizers"]):
        optimizer.load_state_dict(state)
    if obs_rms is not None:
        obs_rms.load_state_dict(checkpoint["obs_rms"])
    if reward_scaler is not None:
        reward_scaler.return_rms.load_state_dict(checkpoint["return_rms"])

def save_checkpoint(state: dict, path: str):
    """Atomically: a crash while writing leaves the previous file whole."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)

def load_checkpoint(path: str) -> dict:
    """One line for a missing, corrupt or foreign file, or one that would run code (weights_only=True refuses it)."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint or model at {path!r} (a run writes runs/<run_name>/checkpoint.pt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("format") != "trpo_discrete":
            raise ValueError("another format")
        Args(**checkpoint["args"])
    except Exception as error:
        reason = " ".join(str(error).split())[:80]
        raise UsageError(f"{path!r} is not a checkpoint or model of trpo_discrete.py ({type(error).__name__}: "
                         f"{reason})") from None
    return checkpoint

def evaluate(model_path: str, env_id: Optional[str] = None, eval_episodes: int = 10, seed: int = 0,
             device: str = "cpu") -> dict:
    """Runs a saved model (its most probable action, its observation statistics) on env_id (unset: its own)."""
    check_types({"eval_model": model_path, "env_id": env_id, "eval_episodes": eval_episodes, "seed": seed})
    checkpoint = load_checkpoint(model_path)
    args = Args(**checkpoint["args"])
    env_id = env_id or args.env_id
    if eval_episodes <= 0:
        raise UsageError(f"--eval-episodes must be positive, got {eval_episodes}")
    check_env(env_id)
    env = make_env(env_id, 0, False, "")()
    obs_dim = checkpoint["agent"]["actor.0.weight"].shape[1]
    n_actions = checkpoint["agent"][f"actor.{2 * len(args.hidden_sizes)}.bias"].numel()  # the output layer's
    if env.observation_space.shape != (obs_dim,) or env.action_space.n != n_actions:
        raise UsageError(f"the model in {model_path!r} was trained on {args.env_id} (obs {obs_dim}, {n_actions} "
                         f"actions); {env_id} does not match")
    agent = Agent(obs_dim, n_actions, args).to(device)
    agent.load_state_dict(checkpoint["agent"])
    obs_rms = RunningMeanStd(obs_dim).load_state_dict(checkpoint["obs_rms"]) if checkpoint["obs_rms"] else None
    returns = []
    obs, _ = env.reset(seed=seed)
    while len(returns) < eval_episodes:
        with torch.inference_mode():
            logits = agent.actor(torch.as_tensor(normalize_obs(obs[None], obs_rms), device=device))[0]
        obs, _, terminated, truncated, info = env.step(logits.argmax().item())
        if terminated or truncated:
            returns.append(info["episode"]["r"].item())
            obs, _ = env.reset()
    env.close()
    print(f"evaluation over {eval_episodes} episodes: return {np.mean(returns):.2f} ± {np.std(returns):.2f}")
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "returns": returns}


# === Rollout workers and one learner: under `torchrun --nproc_per_node N` every worker collects num_steps / N steps of
# each rollout; rank 0 gathers the batch, computes the update one process would, and sends the new state back: two
# collectives an iteration, none inside the mathematics. In one process they only pick the device.
def start_workers(cuda: bool) -> tuple:
    """(workers, rank, device): under torchrun the worker joins the others once per process, over gloo (only arrays
    travel); the device is the GPU of the worker's local rank with --cuda (if there is one), else the CPU."""
    workers, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if workers > 1 and not dist.is_initialized():
        # torchrun's store outlives a restart: keys of the attempt's own keep a restarted worker from reading (and
        # connecting to) the address of a lost one
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        store = dist.PrefixStore(f"attempt{attempt}", next(dist.rendezvous("env://"))[0])
        dist.init_process_group("gloo", store=store, rank=rank, world_size=workers)
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    if cuda and not torch.cuda.is_available():
        print("warning: --cuda given but no CUDA device is available; training on the CPU", file=sys.stderr)
    gpu = cuda and torch.cuda.is_available()
    return workers, rank, torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if gpu else torch.device("cpu")

def interrupted_run() -> Optional[str]:
    """Under `torchrun --max-restarts N`, which restarts every worker when one is lost: the checkpoint (if any yet) of
    the run that rank 0 marked runs/<run_name>/.torchrun-<TORCHELASTIC_RUN_ID>, an id torchrun keeps across restarts."""
    restarted = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0"
    marks = glob.glob(f"runs/*/.torchrun-{os.environ['TORCHELASTIC_RUN_ID']}") if restarted else []
    return next(filter(os.path.isfile, [os.path.join(os.path.dirname(mark), "checkpoint.pt") for mark in marks]), None)

def from_learner(value):
    """Rank 0's value on every worker (one broadcast)."""
    box = [value]
    if dist.is_initialized():
        dist.broadcast_object_list(box, src=0)
    return box[0]

def to_learner(batch: dict, episodes: list, own_obs_rms: RunningMeanStd, synced_obs_rms) -> tuple:
    """Rank 0 gets every worker's batch (concatenated in rank order), episodes and moments of the observations since
    the last synchronization (one gather), and merges the moments into the statistics it sent last. Returns (batch,
    episodes, the merged statistics, a copy to merge into next time); the other workers get their own back."""
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object((batch, episodes, own_obs_rms), gathered, dst=0)
    if gathered is None:
        return batch, episodes, None, synced_obs_rms
    batches, episodes, owns = zip(*gathered)
    batch = {key: np.concatenate([b[key] for b in batches]) for key in batch}
    merged = copy.deepcopy(synced_obs_rms)
    for own in owns if merged is not None else []:  # the statistics sent last, with every worker's observations since
        merged.update_from_moments(own.mean, own.var, own.count)
    return batch, [episode for worker in episodes for episode in worker], merged, copy.deepcopy(merged)

def share_learner_state(agent: Agent, obs_rms):
    """Every worker gets rank 0's parameters and observation statistics (one broadcast)."""
    state = from_learner({"agent": {key: value.cpu() for key, value in agent.state_dict().items()}, "obs_rms": obs_rms})
    agent.load_state_dict(state["agent"])
    return state["obs_rms"]


# === Command line: one-line errors before anything is written, the most basic problem first
class UsageError(Exception):
    """A problem with the user's input: the command line prints it as one line, without a traceback."""

def validate_args(args: Args) -> Args:
    """Checks the env, then each number, then the sizes (for torchrun's workers); fills in the default env id."""
    args = dataclasses.replace(args, env_id=args.env_id or "CartPole-v1")
    check_env(args.env_id)
    for flag, package in [("track", "wandb"), ("capture_video", "moviepy")]:
        if getattr(args, flag) and importlib.util.find_spec(package) is None:
            raise UsageError(f"--{flag.replace('_', '-')} needs {package}: pip install {package}")
    rules = [(lambda v: v > 0, "positive", "total_timesteps num_envs num_steps target_kl cg_iters backtrack_iters "
              "fvp_sample_freq critic_lr update_epochs critic_minibatch_size eval_episodes"),
             (lambda v: v >= 0, "non-negative", "cg_damping critic_l2_coef max_grad_norm checkpoint_every"),
             (lambda v: 0 <= v <= 1, "in [0, 1]", "gamma gae_lambda"),
             (lambda v: 0 < v < 1, "in (0, 1)", "backtrack_coef"),
             (lambda v: len(v) > 0 and min(v) > 0, "positive sizes", "hidden_sizes")]
    for rule, wanted, names in rules:
        for name in names.split():
            if not rule(getattr(args, name)):
                raise UsageError(f"--{name.replace('_', '-')} must be {wanted}, got {getattr(args, name)}")
    batch_size = args.num_envs * args.num_steps
    if args.num_steps % (workers := int(os.environ.get("WORLD_SIZE", "1"))) != 0:  # torchrun's workers
        raise UsageError(f"--num-steps {args.num_steps} cannot be shared by {workers} workers; choose a multiple")
    if args.total_timesteps < batch_size:
        raise UsageError(f"--total-timesteps {args.total_timesteps} is less than one batch of {batch_size} "
                         f"(num_envs × num_steps); raise it or lower --num-steps")
    return args

def check_env(env_id: str):
    """One line for a Safety-Gymnasium id (continuous), an id no registry knows or that cannot be made, observations
    without a shape, or actions that are not Discrete."""
    if env_id.startswith("Safety"):
        raise UsageError(f"{env_id}: Safety-Gymnasium tasks have continuous actions; use trpo_continuous.py")
    try:
        env = gym.make(env_id)
    except gym.error.Error as error:  # an id no registry knows, or a package it needs (Box2D) missing
        what = "unknown env id" if isinstance(error, gym.error.Unregistered) else "cannot make"
        raise UsageError(f"{what} {env_id!r}: {error}") from None
    with env:
        if env.observation_space.shape is None:  # a Dict or a Tuple of spaces
            raise UsageError(f"{env_id} has a {type(env.observation_space).__name__} observation space; flatten it "
                             f"(gymnasium.wrappers.FlattenObservation) for these networks")
        if not isinstance(env.action_space, gym.spaces.Discrete):
            hint = "; use trpo_continuous.py" if isinstance(env.action_space, gym.spaces.Box) else ""
            raise UsageError(f"{env_id} has a {type(env.action_space).__name__} action space; trpo_discrete.py needs "
                             f"a Discrete action space{hint}")

def parse_args(argv=None) -> Args:
    """The command line as Args; with `--config PATH`, the yaml file's fields are the defaults that flags override."""
    args = tyro.cli(Args, args=argv)
    if args.config is None:
        return args
    if not os.path.isfile(args.config):
        raise UsageError(f"no config file at {args.config!r}")
    with open(args.config) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict) or set(values) & set(LAUNCH_ARGUMENTS):
        raise UsageError(f"{args.config} is not a yaml mapping of Args fields (but {', '.join(LAUNCH_ARGUMENTS)})")
    try:  # yaml gives lists where Args has tuples
        defaults = Args(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})
    except (TypeError, UsageError) as error:
        raise UsageError(f"{args.config}: {error}") from None
    return tyro.cli(Args, default=defaults, args=argv)

def check_types(values: dict):
    """One line for a value its flag would refuse for its type, whether from Python or a file: typeguard (tyro's own
    checker) holds it to Args' annotation, every item of a list, which stands for a tuple; True is no number."""
    annotations = get_type_hints(Args)
    for name, value in values.items():
        try:
            if isinstance(value, bool) and bool not in (annotations[name], *get_args(annotations[name])):
                raise typeguard.TypeCheckError("is a bool, not a number")
            typeguard.check_type(tuple(value) if isinstance(value, list) else value, annotations[name],
                                 collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS)
        except typeguard.TypeCheckError as error:
            raise UsageError(f"{name} = {value!r}: {' '.join(str(error).split())}") from None

def main(argv=None):
    try:
        args = parse_args(argv)
        if args.eval_model:
            evaluate(args.eval_model, args.env_id, args.eval_episodes, args.seed)
        else:
            train(args)
    except (UsageError, yaml.YAMLError) as error:  # a yaml file's error names the file
        sys.exit(f"error: {' '.join(str(error).split())}")


if __name__ == "__main__":
    main()
