# Trust Region Policy Optimization with a Gaussian policy, and TRPO-Lagrangian for safe RL, in one file.
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
from torch.distributions import Independent, Normal
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

    # Algorithm: the defaults sweep's (benchmark/README.md); OmniSafe's: --config benchmark/presets/omnisafe.yaml
    env_id: Optional[str] = None  # a Gymnasium id with Box actions or a Safety-Gymnasium id (SafetyPointGoal1-v0)
    total_timesteps: int = 1_000_000  # environment steps of the whole run, over all envs and workers
    num_envs: int = 16  # the environments stepped together (by each worker, under torchrun)
    async_envs: bool = False  # if toggled, each environment steps in its own process (for slow simulators)
    num_steps: int = 256  # steps of each env per update (split among torchrun's workers): the batch study's choice
    gamma: float = 0.99  # the discount factor γ
    gae_lambda: float = 0.95  # the λ of generalized advantage estimation
    target_kl: float = 0.01  # δ: the largest mean KL(π_old ‖ π_new) of an update, summed over action dimensions
    cg_iters: int = 15  # the conjugate gradient iterations for x ≈ F⁻¹g
    cg_damping: float = 0.1  # the damping added to the Fisher matrix: F + damping·I
    backtrack_coef: float = 0.8  # the line search tries the step fractions backtrack_coef^i, i = 0, 1, ...
    backtrack_iters: int = 10  # the most steps the line search tries before it rejects the update
    fvp_sample_freq: int = 1  # the Fisher-vector product uses every fvp_sample_freq-th observation of the batch
    critic_lr: float = 1e-3  # the learning rate of the critics' Adam
    anneal_lr: bool = False  # if toggled, the critics' learning rate decays linearly to 0 (OmniSafe's linear_lr_decay)
    update_epochs: int = 20  # the passes over the batch that fit the critics
    critic_minibatch_size: int = 1024  # each pass splits the batch into ceil(batch / this) minibatches of equal size ±1
    critic_l2_coef: float = 1e-3  # the coefficient of the L2 penalty on the critics' weights
    max_grad_norm: float = 40.0  # the critics' gradients are clipped to this norm
    normalize_obs: bool = True  # if toggled, observations are standardized by running statistics and clipped to ±5
    normalize_reward: bool = True  # if toggled, rewards are divided by the running std of the discounted return
    log_std_init: float = -0.5  # the initial log σ of the Gaussian policy (σ is state independent)
    std_schedule: Optional[Tuple[float, float]] = None  # START END: σ from START to END over the run, not learned
    hidden_sizes: Tuple[int, ...] = (64, 64)  # the hidden layers of the policy and of each critic (separate networks)
    activation: Literal["tanh", "relu"] = "tanh"  # the activation of the hidden layers
    weight_init: Literal["orthogonal", "pytorch"] = "orthogonal"  # CleanRL's, or nn.Linear's own (OmniSafe's)

    # Safe RL, on envs whose steps report info["cost"] (every Safety-Gymnasium task)
    use_cost_critic: bool = False  # if toggled, also fit a cost critic V^c to the costs (implied by --cost-limit)
    cost_limit: Optional[float] = None  # d: if set, TRPO-Lagrangian keeps the mean episodic cost J_c under d
    cost_gamma: float = 0.99  # the discount factor of the costs
    cost_gae_lambda: float = 0.95  # the λ of the cost advantages' GAE
    standardize_cost_advantages: bool = True  # if toggled, Â_c is standardized like Â_r, else centred only (OmniSafe's)
    lagrange_update: Literal["gradient", "adam", "pid"] = "gradient"  # how λ moves after each rollout (see README)
    cost_window: int = 0  # J_c is the mean cost of the last cost_window episodes (0: of those ended in the rollout)
    lagrange_lr: float = 0.035  # η of the gradient and Adam updates (0: λ stays at its initial value, a fixed penalty)
    lagrange_multiplier_init: float = 0.0  # λ at the start of the run (the PID rule's integral's)
    pid_kp: float = 0.1  # K_p, the PID rule's gain on the moving average of the violation J_c − d
    pid_ki: float = 0.01  # K_i, the PID rule's integral gain
    pid_kd: float = 0.01  # K_d, the PID rule's gain on the rise of the cost's moving average over pid_d_delay updates
    pid_d_delay: int = 10  # the updates over which the PID rule measures the rise
    pid_p_ema_alpha: float = 0.95  # α of the PID rule's moving average of the violation
    pid_d_ema_alpha: float = 0.95  # α of the PID rule's moving average of the cost
    pid_max: Optional[float] = None  # the PID rule's largest λ (none: no cap, as in OmniSafe's TRPOPID)
    cost_line_search: bool = False  # if toggled, the line search also refuses steps that raise the cost surrogate
    penalty_coef: float = 0.0  # κ: train on the penalized reward r − κ·c (OmniSafe's reward_penalty; 0: off)

    def __post_init__(self):  # from Python, a yaml file or a checkpoint: a value its flag would refuse is refused
        check_types(vars(self))


LAUNCH_ARGUMENTS = ("config", "resume", "eval_model")  # how a run was started: never in its args.yaml


# === Environments: Gymnasium or Safety-Gymnasium, with each episode's return, length and cost
def import_safety_gymnasium():
    """Safety-Gymnasium 1.0.0 declares numpy arrays as dataclass field defaults, which Python 3.11 rejects: while it
    imports, each such default becomes a default_factory that copies it (the same value)."""
    original_dataclass = dataclasses.dataclass

    def dataclass_with_array_defaults(cls=None, /, **kwargs):
        def wrap(cls):
            for name, value in list(vars(cls).items()):
                if isinstance(value, np.ndarray):
                    setattr(cls, name, dataclasses.field(default_factory=value.copy))
            return original_dataclass(cls, **kwargs)
        return wrap if cls is None else wrap(cls)

    dataclasses.dataclass = dataclass_with_array_defaults
    try:
        import safety_gymnasium
    finally:
        dataclasses.dataclass = original_dataclass
    return safety_gymnasium

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
        render_mode = "rgb_array" if capture_video and idx == 0 else None
        if env_id.startswith("Safety"):  # its steps give (obs, reward, cost, terminated, truncated, info): cost to info
            safety_gymnasium = import_safety_gymnasium()
            env = safety_gymnasium.make(env_id, render_mode=render_mode)
            env = safety_gymnasium.wrappers.SafetyGymnasium2Gymnasium(env)
        else:
            env = gym.make(env_id, render_mode=render_mode)
        if capture_video and idx == 0:
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        return gym.wrappers.RecordEpisodeStatistics(RecordEpisodeCost(env))
    return thunk

def step_costs(infos: dict, num_envs: int) -> np.ndarray:
    """Each env's cost c_t of the last step (0 where none is reported). An env whose episode just ended has been
    reset within the step: its step's cost is in infos["final_info"]."""
    costs = np.zeros(num_envs, np.float32)
    if "cost" in infos:
        costs[infos["_cost"]] = infos["cost"][infos["_cost"]]
    for i in np.flatnonzero(infos.get("_final_info", [])):
        costs[i] = infos["final_info"][i].get("cost", 0.0)
    return costs


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


# === The agent: the policy and the critics, separate networks
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
    """π_θ(a|s) = N(μ_θ(s), diag(σ²)) with a state-independent log σ, a critic V_φ(s) and, for safe RL, a cost critic
    V^c_ψ(s). All take normalized observations."""

    def __init__(self, obs_dim: int, act_dim: int, args: Args):
        super().__init__()
        self.critic = mlp(obs_dim, 1, 1.0, args)
        self.actor_mean = mlp(obs_dim, act_dim, 0.01, args)  # 0.01: the first actions are near 0
        self.actor_logstd = nn.Parameter(torch.full((act_dim,), float(args.log_std_init)))
        self.cost_critic = None
        if args.use_cost_critic or args.cost_limit is not None:
            with torch.random.fork_rng(devices=[]):  # its own random numbers: with λ = 0 the run is plain TRPO's
                self.cost_critic = mlp(obs_dim, 1, 1.0, args)

    def actor_parameters(self) -> list:
        """θ, the parameters that TRPO updates."""
        return list(self.actor_mean.parameters()) + [self.actor_logstd]

    def gaussian(self, mean: torch.Tensor) -> Independent:
        """N(mean, diag(σ²)) of the action vector: its log-probability, entropy and KL sum over action dimensions."""
        return Independent(Normal(mean, self.actor_logstd.exp().expand_as(mean), validate_args=False), 1,
                           validate_args=False)

    def distribution(self, obs: torch.Tensor) -> Independent:
        return self.gaussian(self.actor_mean(obs))

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

def standardize(x: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Â ← (Â − mean Â) / (std Â + 1e-8), or Â − mean Â without scale (OmniSafe's cost advantages)."""
    return (x - x.mean()) / (x.std() + 1e-8 if scale else 1.0)

def gradient_lagrange_step(multiplier: float, mean_episode_cost: float, cost_limit: float, lr: float) -> float:
    """λ ← max(0, λ + η (J_c − d)): projected gradient ascent on the Lagrangian's λ (J_c − d)."""
    return max(0.0, multiplier + lr * (mean_episode_cost - cost_limit))

def adam_lagrange_step(multiplier, moments, mean_episode_cost, cost_limit, lr, betas=(0.9, 0.999), eps=1e-8) -> tuple:
    """OmniSafe's rule, an Adam step on the loss −λ (J_c − d): g = d − J_c, m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²,
    λ ← max(0, λ − η m̂ / (√v̂ + ε)) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ). Returns (λ, [m, v, t])."""
    m, v, t = moments
    g = -(mean_episode_cost - cost_limit)
    t, m, v = t + 1, betas[0] * m + (1 - betas[0]) * g, betas[1] * v + (1 - betas[1]) * g * g
    step = lr * (m / (1 - betas[0] ** t)) / (math.sqrt(v / (1 - betas[1] ** t)) + eps)
    return max(0.0, multiplier - step), [m, v, t]

def pid_lagrange_step(pid: dict, mean_episode_cost: float, args: Args) -> tuple:
    """Stooke et al.'s PID Lagrangian as OmniSafe runs it, on e = J_c − d: I ← max(0, I + K_i e), p ← α_p p +
    (1 − α_p)e, c ← α_d c + (1 − α_d)J_c, λ = max(0, K_p p + I + K_d max(0, c − c′)), c′ the c of pid_d_delay updates
    before (0 until then), capped at pid_max if set. Returns (λ, its memory); K_p = K_d = 0 gives the gradient rule."""
    violation = mean_episode_cost - args.cost_limit
    integral = max(0.0, pid["integral"] + args.pid_ki * violation)
    p = args.pid_p_ema_alpha * pid["p"] + (1 - args.pid_p_ema_alpha) * violation
    c = args.pid_d_ema_alpha * pid["c"] + (1 - args.pid_d_ema_alpha) * mean_episode_cost
    multiplier = max(0.0, args.pid_kp * p + integral + args.pid_kd * max(0.0, c - pid["history"][0]))
    history = (pid["history"] + [c])[-args.pid_d_delay:]
    capped = multiplier if args.pid_max is None else min(multiplier, args.pid_max)
    return capped, dict(integral=integral, p=p, c=c, history=history)

def update_lagrange(lagrange: dict, episode_costs: list, args: Args) -> dict:
    """λ and its rule's memory, moved by --lagrange-update's rule on J_c, the mean cost of the last cost_window
    episodes (with cost_window 0, of episode_costs: those that ended in the rollout)."""
    recent_costs = (lagrange["recent_costs"] + episode_costs)[-args.cost_window:] if args.cost_window else episode_costs
    mean_episode_cost = float(np.mean(recent_costs))
    lagrange = dict(lagrange, recent_costs=recent_costs, mean_episode_cost=mean_episode_cost)
    if args.lagrange_update == "gradient":
        lagrange["multiplier"] = gradient_lagrange_step(lagrange["multiplier"], mean_episode_cost, args.cost_limit,
                                                        args.lagrange_lr)
    elif args.lagrange_update == "adam":
        lagrange["multiplier"], lagrange["adam_moments"] = adam_lagrange_step(
            lagrange["multiplier"], lagrange["adam_moments"], mean_episode_cost, args.cost_limit, args.lagrange_lr)
    else:
        lagrange["multiplier"], lagrange["pid"] = pid_lagrange_step(lagrange["pid"], mean_episode_cost, args)
    return lagrange

def penalized_advantages(reward_advantages, cost_advantages, multiplier: float) -> torch.Tensor:
    """Â = (Â_r − λ Â_c) / (1 + λ): the advantage of r − λc, kept at Â_r's scale however large λ grows."""
    return (reward_advantages - multiplier * cost_advantages) / (1.0 + multiplier)

def surrogate_objective(dist: Independent, actions, old_logprobs, advantages) -> torch.Tensor:
    """L(θ) = mean_t[π_θ(a_t|s_t) / π_old(a_t|s_t) · Â_t], the importance-sampled surrogate (spec eq. 4)."""
    return (torch.exp(dist.log_prob(actions) - old_logprobs) * advantages).mean()

def mean_kl(old_dist: Independent, new_dist: Independent) -> torch.Tensor:
    """D̄_KL(θ_old, θ) = mean over states of KL(π_old(·|s) ‖ π_θ(·|s)), each KL summed over action dimensions."""
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
                             old_cost_objective: float, cost_slack: float, args: Args) -> tuple:
    """Tries θ = θ_old + backtrack_coef^i · full_step, i < backtrack_iters, and keeps the first whose surrogate L is
    finite and improved, whose cost surrogate L_c rose by at most cost_slack (the spec's cost-aware search) and whose
    mean KL is ≤ δ; else restores θ_old exactly. evaluate() gives (L, D̄_KL, L_c) at the parameters set. Returns
    (acceptance step i + 1, or 0; the step fraction; L; KL; the steps refused for each reason)."""
    rejected = {"not_finite": 0, "no_improvement": 0, "cost": 0, "kl": 0}
    for i in range(args.backtrack_iters):
        step_fraction = args.backtrack_coef**i
        vector_to_parameters(old_params + step_fraction * full_step, params)
        objective, kl, cost_objective = evaluate()
        if not all(map(math.isfinite, (objective, kl, cost_objective))):
            rejected["not_finite"] += 1
        elif objective <= old_objective:
            rejected["no_improvement"] += 1
        elif cost_objective - old_cost_objective > cost_slack:
            rejected["cost"] += 1
        elif kl > args.target_kl:
            rejected["kl"] += 1
        else:
            return i + 1, step_fraction, objective, kl, rejected
    vector_to_parameters(old_params, params)
    return 0, 0.0, old_objective, 0.0, rejected

def trpo_policy_update(agent: Agent, obs, actions, old_logprobs, advantages, args: Args, cost_advantages=None,
                       cost_slack: float = math.inf) -> dict:
    """One TRPO step: g = ∇L, x ≈ F⁻¹g by conjugate gradient, β = √(2δ / xᵀFx), the line search along βx (testing
    the cost surrogate of cost_advantages too, if given). A zero or non-finite g, or xᵀFx ≤ 0, skips the update with
    a warning. Returns the step's statistics."""
    params = agent.actor_parameters()
    cost_advantages = torch.zeros_like(advantages) if cost_advantages is None else cost_advantages
    with torch.no_grad():
        old_dist = agent.distribution(obs)  # π_old, fixed while θ moves
    objective = surrogate_objective(agent.distribution(obs), actions, old_logprobs, advantages)
    g = flat_grad(objective, params)
    stats = dict(grad_norm=g.norm().item(), xHx=0.0, step_norm=0.0, acceptance_step=0, expected_improvement=0.0,
                 actual_improvement=0.0, kl=0.0, rejected_not_finite=0, rejected_no_improvement=0, rejected_cost=0,
                 rejected_kl=0)
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
            values = [surrogate_objective(dist, actions, old_logprobs, advantages), mean_kl(old_dist, dist),
                      surrogate_objective(dist, actions, old_logprobs, cost_advantages)]
            return torch.stack(values).tolist()

    old_objective, old_cost_objective = objective.item(), cost_advantages.mean().item()  # L_c(θ_old): every ratio is 1
    acceptance_step, fraction, new_objective, kl, rejected = backtracking_line_search(
        params, parameters_to_vector(params).detach(), full_step, evaluate, old_objective, old_cost_objective,
        cost_slack, args)
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


# === Training: each iteration is a rollout, the advantages, λ, one TRPO step, the critics' fit, the logs, a checkpoint
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

    # The envs, the agent with its critics (the reward's, the cost's), the statistics and λ: new, or from a checkpoint
    envs = (gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv)(
        [make_env(args.env_id, i, args.capture_video, run_name) for i in range(args.num_envs)])
    obs_dim, act_dim = int(np.prod(envs.single_observation_space.shape)), int(np.prod(envs.single_action_space.shape))
    low, high = envs.single_action_space.low, envs.single_action_space.high
    agent = Agent(obs_dim, act_dim, args).to(device)
    critics = [agent.critic] + ([agent.cost_critic] if agent.cost_critic is not None else [])
    gammas, gae_lambdas = [args.gamma, args.cost_gamma], [args.gae_lambda, args.cost_gae_lambda]
    # fused Adam: one kernel for all of a critic's parameters, faster on these small networks
    optimizers = [torch.optim.Adam(critic.parameters(), lr=args.critic_lr, fused=True) for critic in critics]
    obs_rms = RunningMeanStd(obs_dim) if args.normalize_obs else None
    reward_scaler = RewardScaler(args.num_envs, args.gamma) if args.normalize_reward else None
    pid = dict(integral=args.lagrange_multiplier_init, p=0.0, c=0.0, history=[0.0])  # the PID rule's memory
    lagrange = {"multiplier": args.lagrange_multiplier_init, "adam_moments": [0.0, 0.0, 0], "pid": pid,
                "recent_costs": [], "mean_episode_cost": None}
    if checkpoint is not None:
        restore_training_state(checkpoint, agent, optimizers, obs_rms, reward_scaler)
        lagrange = checkpoint["lagrange"]
    elif workers > 1:
        share_learner_state(agent, obs_rms, lagrange)  # rank 0's initial weights for every worker
    # the statistics the learner sent last, and this worker's observations since (what it sends the learner)
    synced_obs_rms, own_obs_rms = copy.deepcopy(obs_rms), RunningMeanStd(obs_dim, count=0.0)

    # Rollout storage, preallocated in NumPy: per-step writes into torch tensors cost more than the writes
    num_steps, num_iterations = args.num_steps // workers, args.total_timesteps // (args.num_envs * args.num_steps)
    obs = np.zeros((num_steps, args.num_envs, obs_dim), np.float32)
    actions = np.zeros((num_steps, args.num_envs, act_dim), np.float32)
    action_means = np.zeros((num_steps, args.num_envs, act_dim), np.float32)
    signals = np.zeros((len(critics), num_steps, args.num_envs), np.float32)  # each critic's: the reward, the cost
    dones = np.zeros((num_steps, args.num_envs), np.float32)

    writer = open_logs(args, run_name, run_dir, global_step if checkpoint else None) if rank == 0 else None
    # Episodes run on across updates: the envs are reset once, here. Env i of worker r is seeded
    # seed + r·num_envs + i (+ the step count on resume): no two envs of a run start the same episodes.
    raw_obs, _ = envs.reset(seed=args.seed + rank * args.num_envs + global_step)
    next_raw_obs, next_done = raw_obs.reshape(args.num_envs, obs_dim), np.zeros(args.num_envs, np.float32)
    if obs_rms is not None and checkpoint is None:  # the statistics start from the first observations
        own_obs_rms.update(next_raw_obs)
        obs_rms.update_from_moments(own_obs_rms.mean, own_obs_rms.var, own_obs_rms.count)
    recent_returns, recent_costs = deque(maxlen=20), deque(maxlen=20)
    start_time, start_step, last_print = time.time(), global_step, 0.0
    for iteration in range(checkpoint["iteration"] + 1 if checkpoint else 1, num_iterations + 1):
        if args.std_schedule is not None:
            progress = (iteration - 1) / max(num_iterations - 1, 1)
            agent.actor_logstd.data.fill_(math.log(linear_schedule(*args.std_schedule, progress)))
        std = agent.actor_logstd.detach().exp()
        episodes = []  # (step, return, length, cost) of each episode that ends in this rollout

        # Rollout: num_steps steps of every env with the current policy
        for step in range(num_steps):
            global_step += args.num_envs * workers
            obs[step] = normalize_obs(next_raw_obs, obs_rms)
            dones[step] = next_done
            with torch.inference_mode():  # a ~ N(μ_θ(s), σ²); log π_old comes from the stored means after the rollout
                mean = agent.actor_mean(torch.from_numpy(obs[step]).to(device))
                actions[step] = torch.normal(mean, std.expand_as(mean)).cpu().numpy()
                action_means[step] = mean.cpu().numpy()
            # the env gets the action clipped to its bounds; the stored action (and its log-probability) is the sample
            raw_obs, reward, terminations, truncations, infos = envs.step(np.clip(actions[step], low, high))
            done = terminations | truncations
            costs = step_costs(infos, args.num_envs)
            reward = reward - args.penalty_coef * costs
            step_signals = [reward_scaler(reward, done) if reward_scaler is not None else reward, costs][: len(critics)]
            truncated = truncations & ~terminations
            if truncated.any():  # each signal's time-limit bootstrap, from its own critic's value of s_final
                final_obs = normalize_obs(np.stack(infos["final_observation"][truncated]).reshape(-1, obs_dim), obs_rms)
                for k, critic in enumerate(critics):
                    final_values = np.zeros(args.num_envs, np.float32)
                    final_values[truncated] = values_of(critic, final_obs, device)
                    step_signals[k] = add_truncation_bootstrap(step_signals[k], truncated, final_values, gammas[k])
            signals[:, step] = step_signals
            next_raw_obs, next_done = raw_obs.reshape(args.num_envs, obs_dim), done.astype(np.float32)
            if obs_rms is not None:  # OmniSafe's: the statistics move at every step
                obs_rms.update(next_raw_obs)
                if workers > 1:
                    own_obs_rms.update(next_raw_obs)
            for info in infos["final_info"][infos["_final_info"]] if "final_info" in infos else []:
                episode = info["episode"]
                episodes.append((global_step, episode["r"].item(), episode["l"].item(), info.get("episode_cost")))

        # Advantages: each critic's GAE over this worker's envs, from its values of the rollout in one batched call
        values, advantages, returns = [], [], []
        for critic, signal, gamma, gae_lambda in zip(critics, signals, gammas, gae_lambdas):
            values.append(values_of(critic, obs.reshape(-1, obs_dim), device).reshape(num_steps, args.num_envs))
            next_value = values_of(critic, normalize_obs(next_raw_obs, obs_rms), device)
            advantage, ret = compute_gae(signal, values[-1], dones, next_value, next_done, gamma, gae_lambda)
            advantages.append(advantage.reshape(-1))
            returns.append(ret.reshape(-1))
        batch = {"obs": obs.reshape(-1, obs_dim), "actions": actions.reshape(-1, act_dim),
                 "means": action_means.reshape(-1, act_dim), "values": np.stack(values).reshape(len(critics), -1),
                 "advantages": np.stack(advantages), "returns": np.stack(returns)}
        if workers > 1:  # the learner gets every worker's batch, episodes and observations' moments
            batch, episodes, obs_rms, synced_obs_rms = to_learner(batch, episodes, own_obs_rms, synced_obs_rms)
            own_obs_rms = RunningMeanStd(obs_dim, count=0.0)

        # The learner (rank 0): the update (λ, one TRPO step on the policy, the critics' fit), the logs, a checkpoint
        if rank == 0:
            lr = linear_schedule(args.critic_lr, 0.0, (iteration - 1) / num_iterations) if args.anneal_lr else None
            b = {key: torch.from_numpy(value).to(device) for key, value in batch.items()}
            lagrange, trpo_stats, critic_losses = update(agent, optimizers, b, lagrange,
                                                         [cost for *_, cost in episodes], args, lr)

            # Logs: the episodes, CleanRL's charts, the critics' fit, λ, the TRPO step, the policy
            sps = int((global_step - start_step) / (time.time() - start_time))
            for step_ended, episodic_return, length, cost in episodes:
                recent_returns.append(episodic_return)
                writer.add_scalar("charts/episodic_return", episodic_return, step_ended)
                writer.add_scalar("charts/episodic_length", length, step_ended)
                if cost is not None:
                    recent_costs.append(cost)
                    writer.add_scalar("charts/episodic_cost", cost, step_ended)
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("charts/learning_rate", optimizers[0].param_groups[0]["lr"], global_step)
            for k, (prefix, loss) in enumerate(zip(["", "cost_"], critic_losses)):
                writer.add_scalar(f"losses/{prefix}value_loss", loss, global_step)
                writer.add_scalar(f"losses/{prefix}explained_variance",  # of the values before the fit
                                  explained_variance(b["values"][k], b["returns"][k]), global_step)
            if args.cost_limit is not None:
                writer.add_scalar("charts/lagrange_multiplier", lagrange["multiplier"], global_step)
            for name, value in trpo_stats.items():
                writer.add_scalar(f"trpo/{name}", value, global_step)
            with torch.no_grad():
                writer.add_scalar("policy/entropy", agent.distribution(b["obs"]).entropy().mean().item(), global_step)
            writer.add_scalar("policy/std", agent.actor_logstd.exp().mean().item(), global_step)
            if time.time() - last_print >= 3.0 or iteration == num_iterations:
                last_print = time.time()
                print(f"step {global_step}/{args.total_timesteps} | SPS {sps} | ETA "
                      f"{(args.total_timesteps - global_step) / max(sps, 1) / 60:.1f} min"
                      + (f" | return {np.mean(recent_returns):.2f}" if recent_returns else "")
                      + (f" | cost {np.mean(recent_costs):.2f}" if recent_costs else ""), flush=True)

            # Checkpoint: every checkpoint_every iterations and at the end
            last = iteration == num_iterations
            if last or args.checkpoint_every and iteration % args.checkpoint_every == 0:
                state = training_state(args, run_name, global_step, iteration, agent, optimizers, obs_rms,
                                       reward_scaler, lagrange)
                save_checkpoint(state, f"{run_dir}/checkpoint.pt")
                if args.save_model and last:
                    save_checkpoint(state, f"{run_dir}/{args.exp_name}.model")
        if workers > 1:  # every worker gets the learner's parameters, statistics and λ
            obs_rms, lagrange = share_learner_state(agent, obs_rms, lagrange)

    envs.close()
    result = {"global_step": global_step, "run_name": run_name, "agent": agent, "obs_rms": obs_rms,
              "episodic_return": float(np.mean(recent_returns)) if recent_returns else float("nan"),
              "episodic_cost": float(np.mean(recent_costs)) if recent_costs else float("nan"),
              "sps": int((global_step - start_step) / (time.time() - start_time)),
              "lagrange_multiplier": lagrange["multiplier"]}
    if rank == 0:
        if args.save_model:
            result["model_path"] = f"{run_dir}/{args.exp_name}.model"
            print(f"model saved to {result['model_path']}")
            evaluation = evaluate(result["model_path"], args.env_id, args.eval_episodes, args.seed, str(device))
            for episode, episodic_return in enumerate(evaluation["returns"]):
                writer.add_scalar("eval/episodic_return", episodic_return, episode)
            result.update(eval_return=evaluation["mean_return"], eval_cost=evaluation["mean_cost"])
        writer.close()
        if args.track:
            import wandb
            wandb.finish()
    return result

def update(agent: Agent, optimizers: list, batch: dict, lagrange: dict, episode_costs: list, args: Args,
           critic_lr: Optional[float] = None) -> tuple:
    """The learner's update of a batch: Â standardized, λ moved on the episodes that ended, one TRPO step with the
    penalized Â (the cost-aware search's slack from the latest J_c), the critics' fit (at critic_lr, if given)."""
    advantages, cost_advantages = standardize(batch["advantages"][0]), None
    if len(batch["advantages"]) > 1:
        cost_advantages = standardize(batch["advantages"][1], scale=args.standardize_cost_advantages)
    with torch.no_grad():
        old_logprobs = agent.gaussian(batch["means"]).log_prob(batch["actions"])
    if args.cost_limit is not None:
        if episode_costs:
            lagrange = update_lagrange(lagrange, episode_costs, args)
        advantages = penalized_advantages(advantages, cost_advantages, lagrange["multiplier"])
    cost_slack = math.inf
    if args.cost_line_search and lagrange["mean_episode_cost"] is not None:
        cost_slack = max(args.cost_limit - lagrange["mean_episode_cost"], 0.0)
    trpo_stats = trpo_policy_update(agent, batch["obs"], batch["actions"], old_logprobs, advantages, args,
                                    cost_advantages if args.cost_line_search else None, cost_slack)
    for optimizer in optimizers if critic_lr is not None else []:
        optimizer.param_groups[0]["lr"] = critic_lr
    critics = [agent.critic] + ([agent.cost_critic] if agent.cost_critic is not None else [])
    return lagrange, trpo_stats, critic_update(critics, optimizers, list(batch["returns"]), batch["obs"], args)

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
                   obs_rms, reward_scaler, lagrange: dict) -> dict:
    """All a run needs to go on (the weights, the critics' optimizers, the statistics, ...), but the episodes in
    progress: a resumed run starts new ones."""
    return {"format": "trpo_continuous", "args": training_arguments(args), "run_name": run_name,
            "global_step": global_step, "iteration": iteration, "agent": agent.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in optimizers],
            "obs_rms": obs_rms.state_dict() if obs_rms is not None else None,
            "return_rms": reward_scaler.return_rms.state_dict() if reward_scaler is not None else None,
            "lagrange": lagrange}

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
        if checkpoint.get("format") != "trpo_continuous":
            raise ValueError("another format")
        Args(**checkpoint["args"])
    except Exception as error:
        reason = " ".join(str(error).split())[:80]
        raise UsageError(f"{path!r} is not a checkpoint or model of trpo_continuous.py ({type(error).__name__}: "
                         f"{reason})") from None
    return checkpoint

def evaluate(model_path: str, env_id: Optional[str] = None, eval_episodes: int = 10, seed: int = 0,
             device: str = "cpu") -> dict:
    """Runs a saved model deterministically (the mean action, clipped to the bounds), with its saved observation
    statistics, for eval_episodes episodes on env_id (unset: its own); prints and returns their returns and costs."""
    check_types({"eval_model": model_path, "env_id": env_id, "eval_episodes": eval_episodes, "seed": seed})
    checkpoint = load_checkpoint(model_path)
    args = Args(**checkpoint["args"])
    env_id = env_id or args.env_id
    if eval_episodes <= 0:
        raise UsageError(f"--eval-episodes must be positive, got {eval_episodes}")
    check_env(env_id)
    env = make_env(env_id, 0, False, "")()
    obs_dim, act_dim = checkpoint["agent"]["actor_mean.0.weight"].shape[1], checkpoint["agent"]["actor_logstd"].numel()
    if env.observation_space.shape != (obs_dim,) or env.action_space.shape != (act_dim,):
        raise UsageError(f"the model in {model_path!r} was trained on {args.env_id} (obs {obs_dim}, act {act_dim}); "
                         f"{env_id} does not match")
    agent = Agent(obs_dim, act_dim, args).to(device)
    agent.load_state_dict(checkpoint["agent"])
    obs_rms = RunningMeanStd(obs_dim).load_state_dict(checkpoint["obs_rms"]) if checkpoint["obs_rms"] else None
    returns, costs = [], []
    obs, _ = env.reset(seed=seed)
    while len(returns) < eval_episodes:
        with torch.inference_mode():
            mean = agent.actor_mean(torch.as_tensor(normalize_obs(obs[None], obs_rms), device=device))[0]
        obs, _, terminated, truncated, info = env.step(np.clip(mean.cpu().numpy(), env.action_space.low,
                                                               env.action_space.high))
        if terminated or truncated:
            returns.append(info["episode"]["r"].item())
            costs.append(info.get("episode_cost", float("nan")))
            obs, _ = env.reset()
    env.close()
    print(f"evaluation over {eval_episodes} episodes: return {np.mean(returns):.2f} ± {np.std(returns):.2f}"
          + (f", cost {np.mean(costs):.2f}" if not np.isnan(costs).any() else ""))
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "mean_cost": float(np.mean(costs)), "returns": returns, "costs": costs}


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
    batch = {key: np.concatenate([b[key] for b in batches], axis=-1 if key in ("values", "advantages", "returns") else 0)
             for key in batch}
    merged = copy.deepcopy(synced_obs_rms)
    for own in owns if merged is not None else []:  # the statistics sent last, with every worker's observations since
        merged.update_from_moments(own.mean, own.var, own.count)
    return batch, [episode for worker in episodes for episode in worker], merged, copy.deepcopy(merged)

def share_learner_state(agent: Agent, obs_rms, lagrange: dict) -> tuple:
    """Every worker gets rank 0's parameters, observation statistics and λ with its rule's memory (one broadcast)."""
    state = from_learner({"agent": {key: value.cpu() for key, value in agent.state_dict().items()}, "obs_rms": obs_rms,
                          "lagrange": lagrange})
    agent.load_state_dict(state["agent"])
    return state["obs_rms"], state["lagrange"]


# === Command line: one-line errors before anything is written, the most basic problem first
class UsageError(Exception):
    """A problem with the user's input: the command line prints it as one line, without a traceback."""

def validate_args(args: Args) -> Args:
    """Checks the env (its id, its actions, its cost where one is needed), then each number, then the sizes (for
    torchrun's workers sharing each rollout). Fills in the default env id. Args itself checked the types."""
    args = dataclasses.replace(args, env_id=args.env_id or "SafetyPointGoal1-v0")
    check_env(args.env_id, needs_cost=args.use_cost_critic or args.cost_limit is not None or args.penalty_coef != 0)
    for flag, package in [("track", "wandb"), ("capture_video", "moviepy")]:
        if getattr(args, flag) and importlib.util.find_spec(package) is None:
            raise UsageError(f"--{flag.replace('_', '-')} needs {package}: pip install {package}")
    rules = [(lambda v: v > 0, "positive", "total_timesteps num_envs num_steps target_kl cg_iters backtrack_iters "
              "fvp_sample_freq critic_lr update_epochs critic_minibatch_size eval_episodes"),
             (lambda v: v >= 0, "non-negative", "cg_damping critic_l2_coef max_grad_norm lagrange_lr penalty_coef "
              "lagrange_multiplier_init checkpoint_every pid_kp pid_ki pid_kd pid_max cost_limit cost_window"),
             (lambda v: v >= 1, "at least 1", "pid_d_delay"),
             (lambda v: 0 <= v <= 1, "in [0, 1]", "gamma gae_lambda cost_gamma cost_gae_lambda pid_p_ema_alpha "
              "pid_d_ema_alpha"),
             (lambda v: 0 < v < 1, "in (0, 1)", "backtrack_coef"),
             (lambda v: len(v) > 0 and min(v) > 0, "positive sizes", "hidden_sizes std_schedule")]
    for rule, wanted, names in rules:
        for name in names.split():
            if getattr(args, name) is not None and not rule(getattr(args, name)):
                raise UsageError(f"--{name.replace('_', '-')} must be {wanted}, got {getattr(args, name)}")
    if args.cost_line_search and args.cost_limit is None:
        raise UsageError("--cost-line-search tests the cost against the limit: give --cost-limit too")
    batch_size = args.num_envs * args.num_steps
    if args.num_steps % (workers := int(os.environ.get("WORLD_SIZE", "1"))) != 0:  # torchrun's workers
        raise UsageError(f"--num-steps {args.num_steps} cannot be shared by {workers} workers; choose a multiple")
    if args.total_timesteps < batch_size:
        raise UsageError(f"--total-timesteps {args.total_timesteps} is less than one batch of {batch_size} "
                         f"(num_envs × num_steps); raise it or lower --num-steps")
    return args

def check_env(env_id: str, needs_cost: bool = False):
    """One line for an id no registry knows or that cannot be made, observations without a shape, actions that are not
    a Box, or (needs_cost) steps without info["cost"]. A Safety-Gymnasium task passes; another env is built to find out."""
    if env_id.startswith("Safety"):
        if env_id not in import_safety_gymnasium().utils.registration.safe_registry:
            raise UsageError(f"unknown Safety-Gymnasium env id {env_id!r} (e.g. SafetyPointGoal1-v0)")
        return
    try:
        env = gym.make(env_id)
    except gym.error.Error as error:  # an id no registry knows, or a package it needs (Box2D) missing
        what = "unknown env id" if isinstance(error, gym.error.Unregistered) else "cannot make"
        raise UsageError(f"{what} {env_id!r}: {error}") from None
    with env:
        if env.observation_space.shape is None:  # a Dict or a Tuple of spaces
            raise UsageError(f"{env_id} has a {type(env.observation_space).__name__} observation space; flatten it "
                             f"(gymnasium.wrappers.FlattenObservation) for these networks")
        if not isinstance(env.action_space, gym.spaces.Box):
            hint = "; use trpo_discrete.py" if isinstance(env.action_space, gym.spaces.Discrete) else ""
            raise UsageError(f"{env_id} has a {type(env.action_space).__name__} action space; trpo_continuous.py needs "
                             f"a Box action space{hint}")
        if needs_cost and "cost" not in (env.reset(seed=0), env.step(env.action_space.sample()))[1][-1]:
            raise UsageError(f"{env_id} reports no per-step info['cost']; --use-cost-critic, --cost-limit and "
                             f"--penalty-coef need an env that does (every Safety-Gymnasium task)")

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
