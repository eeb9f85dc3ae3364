# Trust Region Policy Optimization, Gaussian policy, in one file. Documentation: README.md.
# Paper: Schulman et al. 2015, https://arxiv.org/abs/1502.05477
# Specification followed: OmniSafe's TRPO page (theory, Fisher-vector product, conjugate gradient, line search).
import atexit
import contextlib
import copy
import dataclasses
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Tuple

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import yaml
from torch.distributions import Independent, Normal


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 0
    """seed of the experiment: Python, NumPy, torch and the environments"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, train on the GPU when one is available (64-64 networks usually run faster on the CPU)"""
    torch_threads: int = 1
    """number of CPU threads torch may use; 1 is fastest for these small networks"""
    track: bool = False
    """if toggled, this experiment is tracked with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "trpo"
    """the wandb project name"""
    wandb_entity: Optional[str] = None
    """the entity (team) of the wandb project"""
    capture_video: bool = False
    """if toggled, record videos of the first env's episodes under `videos/<run_name>` (needs moviepy and rendering)"""
    save_model: bool = False
    """if toggled, save the model (weights and observation statistics) to `runs/<run_name>/<exp_name>.model`
    and evaluate it for `eval_episodes` episodes after training"""
    eval_episodes: int = 10
    """number of episodes of a deterministic evaluation (after training with `--save-model`, or with `--eval-model`)"""
    eval_model: Optional[str] = None
    """path of a saved `.model` file: skip training, evaluate it for `eval_episodes` episodes on its own env (or
    on `env_id`, if given)"""
    config: Optional[str] = None
    """a yaml file of arguments (such as a run's `args.yaml`) used as defaults; flags on the command line override it"""
    checkpoint_every: int = 0
    """write `runs/<run_name>/checkpoint.pt` every this many iterations (0: never); SIGINT and SIGTERM always write one"""
    resume: Optional[str] = None
    """path of a `checkpoint.pt`: continue that run (its arguments, TensorBoard folder and step count; other
    flags are ignored)"""

    # Algorithm specific arguments. The defaults are the README's defaults sweep's choice (Tianshou's MuJoCo setting,
    # without its learning-rate decay); they depart from OmniSafe's (the spec's) in the batch, the critic's schedule,
    # reward scaling, log σ₀, target_kl and the line search's length. OmniSafe's values:
    # --config benchmark/presets/omnisafe.yaml.
    env_id: Optional[str] = None
    """the id of the environment: any Gymnasium id with a Box action space, or a Safety-Gymnasium id (`Safety*`).
    Unset: SafetyPointGoal1-v0 for training, the model's own env with --eval-model"""
    total_timesteps: int = 1_000_000
    """total environment steps of the experiment (summed over the vectorized envs)"""
    num_envs: int = 16
    """the number of environments stepped together"""
    async_envs: bool = False
    """if toggled, step each environment in its own process (worth it when the simulator is slow, e.g. Safety*)"""
    num_steps: int = 64
    """the number of steps per environment in each rollout; one policy update per rollout (the defaults: 16 × 64 =
    1024 steps per update)"""
    gamma: float = 0.99
    """the discount factor γ"""
    gae_lambda: float = 0.95
    """the λ of generalized advantage estimation"""
    target_kl: float = 0.01
    """δ, the trust region: the largest mean KL(π_old ‖ π_new) per update, summed over action dimensions
    (OmniSafe's and SB3-contrib's target_kl averages over dimensions: theirs × act_dim is ours)"""
    cg_iters: int = 15
    """the number of conjugate gradient iterations for x ≈ F⁻¹g"""
    cg_damping: float = 0.1
    """damping added to the Fisher matrix, (F + damping·I), for a stable conjugate gradient"""
    backtrack_coef: float = 0.8
    """the line search tries the step fractions backtrack_coef^i, i = 0, 1, ..."""
    backtrack_iters: int = 10
    """the maximum number of line-search steps before the update is rejected (OmniSafe's: 15)"""
    fvp_sample_freq: int = 1
    """the Fisher-vector product uses every fvp_sample_freq-th observation of the batch (1: all of them)"""
    critic_lr: float = 1e-3
    """the learning rate of the critic's Adam optimizer"""
    update_epochs: int = 20
    """the number of passes over the batch when fitting the critic"""
    critic_minibatch_size: int = 1024
    """the size of the critic's minibatches: each pass splits the batch into ceil(batch / size) minibatches of
    equal size (±1); a size of at least the batch is one full-batch step per pass"""
    critic_l2_coef: float = 1e-3
    """the coefficient of the L2 penalty on the critic's weights, added to its MSE loss"""
    max_grad_norm: float = 40.0
    """the maximum norm of the critic's gradient (clipped to it)"""
    normalize_obs: bool = True
    """if toggled, observations are standardized by running statistics (saved with the model)"""
    obs_clip: float = 5.0
    """standardized observations are clipped to [-obs_clip, obs_clip]"""
    normalize_reward: bool = True
    """rewards are divided by a running standard deviation of the discounted return (--no-normalize-reward: raw)"""
    log_std_init: float = -0.5
    """the initial log standard deviation of the Gaussian policy (state independent)"""
    std_schedule: Optional[Tuple[float, float]] = None
    """START END: before each rollout, set σ = START + (END − START)·k/(K − 1) in iteration k = 0..K−1, for all
    action dimensions (OmniSafe's exploration_noise_anneal over its std_range); the TRPO step still moves σ
    within an update. Unset (the default): σ is learned from log_std_init"""
    anneal_lr: bool = False
    """if toggled, the critics' learning rate decays linearly from critic_lr to 0 over the run (OmniSafe's
    linear_lr_decay). Off by default: in the defaults sweep, a critic that stopped learning while the policy still
    moved left two Hopper seeds of three stuck"""

    # Networks
    hidden_sizes: Tuple[int, ...] = (64, 64)
    """the hidden layer sizes of the policy and of each critic (separate networks)"""
    activation: Literal["tanh", "relu"] = "tanh"
    """the activation function of the hidden layers"""
    weight_init: Literal["orthogonal", "pytorch"] = "orthogonal"
    """orthogonal: CleanRL's (gain √2, the last layer's 0.01 for the policy mean, 1 for the critics); pytorch:
    nn.Linear's default uniform initialization, which is OmniSafe's kaiming_uniform"""

    # Safe RL: envs whose info reports a per-step cost (every Safety-Gymnasium task)
    use_cost_critic: bool = False
    """if toggled, also fit a cost critic V^c to the discounted cost returns and log its loss (implied by cost_limit)"""
    cost_gamma: float = 0.99
    """the discount factor γ_c of the cost returns"""
    cost_gae_lambda: float = 0.95
    """the λ of the cost advantages' GAE"""
    standardize_cost_advantages: bool = True
    """if toggled, cost advantages are standardized like the reward advantages (the spec's standardized_cost;
    OmniSafe only centers them); --no-standardize-cost-advantages uses them as GAE gives them, not centered"""
    cost_limit: Optional[float] = None
    """d: if set, TRPO-Lagrangian keeps the mean episodic cost J_c under d with a multiplier λ ≥ 0 and the
    surrogate's advantage (A_r − λ·A_c) / (1 + λ); unset, plain TRPO"""
    lagrange_update: Literal["gradient", "adam", "pid"] = "gradient"
    """how λ moves once per iteration: gradient, λ ← max(0, λ + η (J_c − d)); adam, OmniSafe's Adam step on
    −λ (J_c − d) (its TRPOLag: with --lagrange-multiplier-init 0.001); pid, Stooke et al.'s PID Lagrangian"""
    lagrange_lr: float = 0.035
    """the learning rate η of the gradient and Adam updates of λ; 0 holds λ at --lagrange-multiplier-init, a fixed
    penalty"""
    lagrange_multiplier_init: float = 0.0
    """the multiplier λ at the start of the run"""
    pid_kp: float = 0.1
    """K_p, the PID update's proportional gain on the violation J_c − d (OmniSafe's default)"""
    pid_ki: float = 0.01
    """K_i, the PID update's integral gain (with K_p = K_d = 0 the PID update is the gradient update, η = K_i)"""
    pid_kd: float = 0.01
    """K_d, the PID update's derivative gain on the cost's rise since the last iteration"""
    cost_line_search: bool = False
    """if toggled (with --cost-limit), the line search also rejects a step whose cost surrogate rises by more
    than max(−(J_c − d), 0): the spec's cost-aware search"""

DEFAULT_ENV_ID = "SafetyPointGoal1-v0"

# Arguments that say how to start, not how to train: a run's args.yaml and checkpoint never hold them.
LAUNCH_ARGUMENTS = ("config", "resume", "eval_model")


# ---------------------------------------------------------------------------------------------------
# Environments: Gymnasium or Safety-Gymnasium envs with the episode's return, length and cost
# ---------------------------------------------------------------------------------------------------
class RecordEpisodeCost(gym.Wrapper):
    """For envs that report a per-step `info["cost"]` (Safety-Gymnasium's, moved into info): reports its sum as
    `info["episode_cost"]` at episode end."""

    def reset(self, **kwargs):
        self.episode_cost = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "cost" not in info:
            return obs, reward, terminated, truncated, info
        self.episode_cost += float(info["cost"])
        if terminated or truncated:
            info["episode_cost"] = self.episode_cost
        return obs, reward, terminated, truncated, info

def make_env(env_id: str, idx: int, capture_video: bool, run_name: str) -> Callable[[], gym.Env]:
    def thunk():
        render_mode = "rgb_array" if capture_video and idx == 0 else None
        if is_safety_env(env_id):
            safety_gymnasium = import_safety_gymnasium()
            env = safety_gymnasium.make(env_id, render_mode=render_mode)
            # Safety-Gymnasium steps return (obs, reward, cost, terminated, truncated, info); this moves
            # the cost into info so that the usual Gymnasium wrappers and vector envs apply.
            env = safety_gymnasium.wrappers.SafetyGymnasium2Gymnasium(env)
        else:
            env = gym.make(env_id, render_mode=render_mode)
        env = RecordEpisodeCost(env)
        if capture_video and idx == 0:
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        env = gym.wrappers.RecordEpisodeStatistics(env)
        return env

    return thunk

def first_env_seed(seed: int, rank: int, num_envs: int) -> int:
    """The seed of env 0 of worker `rank`; its env i is seeded first_env_seed + i (the vector env's reset), so
    that no two envs of a run, on any worker, start the same episodes."""
    return seed + rank * num_envs

def make_vector_env(args: Args, run_name: str) -> gym.vector.VectorEnv:
    """num_envs copies of the env (already checked by validate_args), stepped together in this process, or each
    in its own process with --async-envs."""
    thunks = [make_env(args.env_id, i, args.capture_video, run_name) for i in range(args.num_envs)]
    return gym.vector.AsyncVectorEnv(thunks) if args.async_envs else gym.vector.SyncVectorEnv(thunks)

def step_costs(infos: dict, num_envs: int) -> np.ndarray:
    """The cost c_t of each env's last step, from the vector env's infos. An env whose episode just ended was
    reset within the step, so its step's info (and cost) is the one in infos["final_info"]."""
    costs = np.zeros(num_envs, np.float32)
    if "cost" in infos:
        costs[infos["_cost"]] = infos["cost"][infos["_cost"]]
    if "final_info" in infos:
        for i in np.flatnonzero(infos["_final_info"]):
            costs[i] = infos["final_info"][i]["cost"]
    return costs


# ---------------------------------------------------------------------------------------------------
# Normalization: running statistics of the observations and of the discounted return
# ---------------------------------------------------------------------------------------------------
class RunningMeanStd:
    """Running mean μ and variance σ² of a stream of batches, merged with Chan et al.'s parallel formula.

    normalize(x) = clip((x − μ) / sqrt(σ² + ε), −clip, clip). Kept in NumPy: during the rollout it runs
    once per step on a few numbers, where each torch call would cost more than the arithmetic.
    """

    def __init__(self, shape, clip: float = math.inf, epsilon: float = 1e-8, count: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = count  # by default a tiny prior count, so that the first batch is not divided by zero
        self.clip = clip
        self.epsilon = epsilon

    def update(self, batch: np.ndarray):
        # batch.mean(axis=0) and batch.var(axis=0), the same arithmetic without their per-call overhead
        count = batch.shape[0]
        batch_mean = np.add.reduce(batch, axis=0) / count
        self.update_from_moments(batch_mean, np.add.reduce((batch - batch_mean) ** 2, axis=0) / count, count)

    def update_from_moments(self, batch_mean, batch_var, batch_count):
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count
                    + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"mean": torch.as_tensor(self.mean), "var": torch.as_tensor(self.var), "count": self.count}

    def load_state_dict(self, state: dict):
        self.mean, self.var, self.count = state["mean"].numpy(), state["var"].numpy(), float(state["count"])

class ObservationNormalizer:
    """Standardizes observations with running statistics, or passes them through unchanged when disabled.
    The statistics are saved with the model, so that evaluation sees observations as training did.

    `synchronized` (torchrun): it also keeps the statistics that all workers agreed on at the last
    synchronization (`synced`) and this worker's own observations since then (`since_sync`), which
    synchronize_statistics merges across workers after every rollout."""

    def __init__(self, obs_dim: int, clip: float, enabled: bool = True, synchronized: bool = False):
        self.enabled = enabled
        self.stats = RunningMeanStd((obs_dim,), clip)
        self.synchronized = synchronized and enabled
        self.start_sync_period()

    def start_sync_period(self):
        """The current statistics become the synced ones; this worker's own observations start anew."""
        if self.synchronized:
            self.synced, self.since_sync = copy.deepcopy(self.stats), RunningMeanStd(self.stats.mean.shape, count=0.0)

    def update(self, obs: np.ndarray):
        if self.enabled:
            self.stats.update(obs)
            if self.synchronized:
                self.since_sync.update(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return (self.stats.normalize(obs) if self.enabled else obs).astype(np.float32)

    def state_dict(self) -> dict:
        return {"enabled": self.enabled, "clip": self.stats.clip, **self.stats.state_dict()}

    def load_state_dict(self, state: dict):
        self.enabled, self.stats.clip = bool(state["enabled"]), float(state["clip"])
        self.stats.load_state_dict(state)
        self.start_sync_period()

class RewardScaler:
    """r̃_t = r_t / sqrt(Var[G] + ε), where G_t = γ G_{t−1} + r_t is each env's running discounted return
    (reset at episode end). Scaling without centering keeps the sign of every reward."""

    def __init__(self, num_envs: int, gamma: float):
        self.gamma = gamma
        self.discounted_return = np.zeros(num_envs)
        self.stats = RunningMeanStd(())

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.discounted_return = self.discounted_return * self.gamma + reward
        self.stats.update(self.discounted_return)
        scaled = reward / np.sqrt(self.stats.var + self.stats.epsilon)
        self.discounted_return[done] = 0.0
        return scaled

    def state_dict(self) -> dict:
        return {"discounted_return": torch.tensor(self.discounted_return), **self.stats.state_dict()}

    def load_state_dict(self, state: dict):
        self.discounted_return = state["discounted_return"].numpy().copy()
        self.stats.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------
# The agent: the policy and the critics (separate networks)
# ---------------------------------------------------------------------------------------------------
def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}

def mlp(in_dim: int, hidden_sizes, out_dim: int, out_std: float, activation: str = "tanh",
        weight_init: str = "orthogonal") -> nn.Sequential:
    """An MLP. With orthogonal initialization, out_std scales the last layer (0.01 for the policy mean keeps
    the first actions near 0, 1.0 for a critic); "pytorch" keeps nn.Linear's own initialization."""
    init = layer_init if weight_init == "orthogonal" else lambda layer, std=None: layer
    layers, last = [], in_dim
    for size in hidden_sizes:
        layers += [init(nn.Linear(last, size)), ACTIVATIONS[activation]()]
        last = size
    layers.append(init(nn.Linear(last, out_dim), std=out_std))
    return nn.Sequential(*layers)

class Agent(nn.Module):
    """π_θ(a|s) = N(μ_θ(s), diag(σ²)) with a state-independent log σ, a critic V_φ(s), and optionally a
    cost critic V^c_ψ(s). All take observations already normalized by the ObservationNormalizer."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes=(64, 64), log_std_init: float = 0.0,
                 activation: str = "tanh", weight_init: str = "orthogonal", cost_critic: bool = False):
        super().__init__()
        self.hidden_sizes, self.activation, self.weight_init = tuple(hidden_sizes), activation, weight_init
        self.critic = mlp(obs_dim, hidden_sizes, 1, 1.0, activation, weight_init)
        self.actor_mean = mlp(obs_dim, hidden_sizes, act_dim, 0.01, activation, weight_init)
        self.actor_logstd = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
        self.cost_critic = None
        if cost_critic:
            # Drawn from a copy of the random stream, so that adding a cost critic changes no other random
            # number of the run: with λ = 0 the policy and the reward critic stay those of plain TRPO.
            with torch.random.fork_rng(devices=[]):
                self.cost_critic = mlp(obs_dim, hidden_sizes, 1, 1.0, activation, weight_init)

    def actor_parameters(self) -> list:
        """θ: the parameters TRPO updates (the critic is fitted separately)."""
        return list(self.actor_mean.parameters()) + [self.actor_logstd]

    def distribution(self, obs: torch.Tensor) -> Independent:
        """π_θ(·|s) = N(μ_θ(s), diag(σ²))."""
        return self.gaussian(self.actor_mean(obs))

    def gaussian(self, mean: torch.Tensor) -> Independent:
        """N(mean, diag(σ²)) as one distribution over the action vector: log-probabilities, entropies and KLs
        are sums over action dimensions, as for any multivariate distribution."""
        std = self.actor_logstd.exp().expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def get_cost_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.cost_critic(obs).squeeze(-1)


# ---------------------------------------------------------------------------------------------------
# The mathematics of the update, one function per equation of the specification.
# ---------------------------------------------------------------------------------------------------
def add_truncation_bootstrap(rewards: np.ndarray, truncated: np.ndarray, final_values: np.ndarray,
                             gamma: float) -> np.ndarray:
    """r_t ← r_t + γ V(s_final) where the episode was truncated (time limit), not terminated.

    The episode did not end in the MDP, so its return goes on beyond s_final; folding γ V(s_final) into
    the last reward lets GAE stop at the boundary and still bootstrap from the final observation."""
    return rewards + gamma * final_values * truncated

def compute_gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, next_value: np.ndarray,
                next_done: np.ndarray, gamma: float, gae_lambda: float) -> tuple:
    """Generalized advantage estimation over a rollout of shape (num_steps, num_envs):

        δ_t = r_t + γ (1 − d_{t+1}) V(s_{t+1}) − V(s_t)
        Â_t = δ_t + γλ (1 − d_{t+1}) Â_{t+1},        returns R_t = Â_t + V(s_t)

    with CleanRL's convention: dones[t] = 1 when observation t begins a new episode, so that d_{t+1}
    cuts both the bootstrap and the recursion at an episode boundary. Returns (advantages, returns), NumPy arrays.
    """
    advantages = np.zeros_like(values)
    last_advantage = 0.0
    # A NumPy loop: per-element torch calls would cost microseconds each, 20000 times per update.
    for t in reversed(range(len(rewards))):
        if t == len(rewards) - 1:
            next_nonterminal, next_values = 1.0 - next_done, next_value
        else:
            next_nonterminal, next_values = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_values * next_nonterminal - values[t]
        advantages[t] = last_advantage = delta + gamma * gae_lambda * next_nonterminal * last_advantage
    return advantages, advantages + values

def standardize(x: torch.Tensor) -> torch.Tensor:
    """Â ← (Â − mean(Â)) / (std(Â) + 1e-8), with the mean and the (unbiased) std of the whole batch."""
    if world_size() == 1:
        return (x - x.mean()) / (x.std() + 1e-8)
    count = torch.tensor(float(x.numel() * world_size()), dtype=x.dtype, device=x.device)
    mean = all_reduce_mean(x.mean())
    variance = all_reduce_mean((x - mean).pow(2).mean()) * count / (count - 1)
    return (x - mean) / (variance.sqrt() + 1e-8)

def update_lagrange_multiplier(lagrange_multiplier: float, mean_episode_cost: float, cost_limit: float,
                               lagrange_lr: float) -> float:
    """λ ← max(0, λ + η (J_c − d)): a gradient ascent step on the Lagrangian's λ·(J_c − d), projected on λ ≥ 0.

    J_c is the mean episodic cost of the rollout just collected: λ grows while J_c exceeds the limit d and
    shrinks back to 0 once the policy is safe, where the update becomes plain TRPO's again."""
    return max(0.0, lagrange_multiplier + lagrange_lr * (mean_episode_cost - cost_limit))

def adam_lagrange_step(lagrange_multiplier: float, moments: list, mean_episode_cost: float, cost_limit: float,
                       lagrange_lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> tuple:
    """OmniSafe's update: one Adam step on the loss −λ (J_c − d), whose gradient is g = −(J_c − d), then λ ≥ 0:

        t ← t + 1,   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,
        λ ← max(0, λ − η (m / (1 − β₁ᵗ)) / (sqrt(v / (1 − β₂ᵗ)) + ε))

    Adam's normalized step moves λ by about η per iteration whatever the size of the violation. moments is
    [m, v, t] (0, 0, 0 at the start); returns (λ, moments)."""
    m, v, t = moments
    g = -(mean_episode_cost - cost_limit)
    t, m, v = t + 1, betas[0] * m + (1 - betas[0]) * g, betas[1] * v + (1 - betas[1]) * g * g
    step = lagrange_lr * (m / (1 - betas[0] ** t)) / (math.sqrt(v / (1 - betas[1] ** t)) + eps)
    return max(0.0, lagrange_multiplier - step), [m, v, t]

def pid_lagrange_step(integral: float, previous_cost: Optional[float], mean_episode_cost: float, cost_limit: float,
                      kp: float, ki: float, kd: float) -> tuple:
    """The PID Lagrangian of Stooke, Achiam and Abbeel 2020 (their Algorithm 2), on the violation e = J_c − d:

        I ← max(0, I + K_i e),   λ = max(0, K_p e + I + K_d max(0, J_c − J_c,previous))

    The integral term alone is the gradient update (η = K_i); the proportional term raises λ while the cost is
    over the limit and lowers it as soon as the cost falls, and the derivative term reacts to a rising cost:
    together they damp the overshoot and oscillation of a pure integral. Returns (λ, I)."""
    violation = mean_episode_cost - cost_limit
    integral = max(0.0, integral + ki * violation)
    rise = max(0.0, mean_episode_cost - previous_cost) if previous_cost is not None else 0.0
    return max(0.0, kp * violation + integral + kd * rise), integral

def initial_lagrange_state(lagrange_multiplier_init: float) -> dict:
    """λ, what its updates keep between iterations, and the latest rollout's J_c, as plain numbers (checkpointed)."""
    return {"multiplier": lagrange_multiplier_init, "adam_moments": [0.0, 0.0, 0],
            "pid_integral": lagrange_multiplier_init, "mean_episode_cost": None}

def update_lagrange_state(lagrange: dict, mean_episode_cost: float, args: Args) -> dict:
    """One update of λ on a rollout's mean episodic cost J_c, by the rule that --lagrange-update names."""
    lagrange = dict(lagrange)
    if args.lagrange_update == "gradient":
        lagrange["multiplier"] = update_lagrange_multiplier(lagrange["multiplier"], mean_episode_cost,
                                                            args.cost_limit, args.lagrange_lr)
    elif args.lagrange_update == "adam":
        lagrange["multiplier"], lagrange["adam_moments"] = adam_lagrange_step(
            lagrange["multiplier"], lagrange["adam_moments"], mean_episode_cost, args.cost_limit, args.lagrange_lr)
    else:
        lagrange["multiplier"], lagrange["pid_integral"] = pid_lagrange_step(
            lagrange["pid_integral"], lagrange["mean_episode_cost"], mean_episode_cost, args.cost_limit,
            args.pid_kp, args.pid_ki, args.pid_kd)
    lagrange["mean_episode_cost"] = mean_episode_cost
    return lagrange

def penalized_advantages(reward_advantages: torch.Tensor, cost_advantages: torch.Tensor,
                         lagrange_multiplier: float) -> torch.Tensor:
    """Â = (Â_r − λ Â_c) / (1 + λ): the advantage of the Lagrangian r − λc, divided by (1 + λ) so that its scale
    stays that of Â_r however large λ grows. TRPO's step and line search then run unchanged on this Â: the
    line search accepts a step when it improves the penalized surrogate inside the trust region."""
    return (reward_advantages - lagrange_multiplier * cost_advantages) / (1.0 + lagrange_multiplier)

def surrogate_objective(agent: Agent, obs, actions, old_logprobs, advantages) -> torch.Tensor:
    """L(θ) = mean_t[ π_θ(a_t|s_t) / π_old(a_t|s_t) · Â_t ], the importance-sampled surrogate of eq. (4)."""
    ratio = torch.exp(agent.distribution(obs).log_prob(actions) - old_logprobs)
    return (ratio * advantages).mean()

def mean_kl(old_dist: Independent, new_dist: Independent) -> torch.Tensor:
    """D̄_KL(θ_old, θ) = mean over states of KL(π_old(·|s) ‖ π_θ(·|s)), each KL summed over action dimensions."""
    return torch.distributions.kl_divergence(old_dist, new_dist).mean()

def flat_params(params) -> torch.Tensor:
    return torch.cat([p.data.reshape(-1) for p in params])

def set_flat_params(params, flat: torch.Tensor):
    offset = 0
    for p in params:
        p.data.copy_(flat[offset: offset + p.numel()].view_as(p))
        offset += p.numel()

def flat_grad(output: torch.Tensor, params, **kwargs) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(output, params, **kwargs)])

def fisher_vector_product(agent: Agent, obs: torch.Tensor, damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ (F + damping·I) v, where F = ∇²_θ D̄_KL(θ_old, θ) at θ = θ_old is the Fisher information matrix.

    Double backpropagation: F v = ∇_θ[(∇_θ D̄_KL)ᵀ v], without ever forming F. The gradient ∇_θ D̄_KL and its
    graph are built once, here; each product is then one backward pass through that graph, which halves the
    cost of the conjugate gradient's cg_iters products and gives the same numbers as rebuilding it each time."""
    params = agent.actor_parameters()
    with torch.no_grad():
        old_dist = agent.distribution(obs)
    grad_kl = flat_grad(mean_kl(old_dist, agent.distribution(obs)), params, create_graph=True)

    def product(vector: torch.Tensor) -> torch.Tensor:
        return all_reduce_mean(flat_grad(grad_kl @ vector, params, retain_graph=True)) + damping * vector

    return product

def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Solves A x = b for symmetric positive-definite A, given only products A·p, in at most `iters` steps.

    Starts at x = 0, so the first residual is r = b (no product needed); stops early once ‖r‖ < residual_tol."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
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
    """β = sqrt(2δ / xᵀHx): the step βx whose quadratic-model KL, ½ (βx)ᵀ H (βx), equals δ."""
    return math.sqrt(2.0 * target_kl / xHx)

def backtracking_line_search(params, old_params: torch.Tensor, full_step: torch.Tensor, evaluate: Callable[[], tuple],
                             old_objective: float, target_kl: float, backtrack_coef: float, backtrack_iters: int,
                             old_cost_objective: float = 0.0, cost_slack: float = math.inf):
    """Tries θ = θ_old + backtrack_coef^i · full_step for i = 0, 1, ..., backtrack_iters − 1 and accepts the
    first one whose surrogate L is finite and improved and whose mean KL ≤ δ: the spec's search on
    L(θ) − 𝒳[D̄_KL(θ_old, θ) ≤ δ]. If none is accepted, θ_old is restored exactly. evaluate() returns
    (L(θ), D̄_KL) at the parameters set, or (L(θ), D̄_KL, L_c(θ)) for the cost-aware search below.

    The spec's cost-aware search (cost_slack = max(−c, 0), c = J_c − d the current violation) also rejects a
    step whose cost surrogate L_c rises by more than the slack: L_c(θ) − L_c(θ_old) > max(−c, 0). Over the limit
    (c ≥ 0) the slack is 0, so no accepted step raises L_c; under it the slack is large (L_c is in advantage
    units, c in episodic-cost units) and seldom binds. It is a first-order test on a surrogate estimated from
    the last rollout: it does not guarantee that the new policy's true cost falls, only that the step does not
    raise the cost that this batch's importance-weighted cost advantages predict.

    Returns (acceptance_step, step_fraction, objective, kl, rejected): acceptance_step is i + 1, or 0 when
    every step was rejected; rejected counts the steps refused for each reason, in the order tested."""
    rejected = {"not_finite": 0, "no_improvement": 0, "cost": 0, "kl": 0}
    for i in range(backtrack_iters):
        step_fraction = backtrack_coef**i
        set_flat_params(params, old_params + step_fraction * full_step)
        objective, kl, *cost_objective = evaluate()
        cost_increase = cost_objective[0] - old_cost_objective if cost_objective else 0.0
        if not (math.isfinite(objective) and math.isfinite(kl) and math.isfinite(cost_increase)):
            rejected["not_finite"] += 1
        elif objective <= old_objective:
            rejected["no_improvement"] += 1
        elif cost_increase > cost_slack:
            rejected["cost"] += 1
        elif kl > target_kl:
            rejected["kl"] += 1
        else:
            return i + 1, step_fraction, objective, kl, rejected
    set_flat_params(params, old_params)
    return 0, 0.0, old_objective, 0.0, rejected

def trpo_policy_update(agent: Agent, obs, actions, old_logprobs, advantages, args: Args,
                       cost_advantages: Optional[torch.Tensor] = None, cost_slack: float = math.inf) -> dict:
    """One TRPO step on θ: g = ∇L, x ≈ F⁻¹g by conjugate gradient, β = sqrt(2δ / xᵀFx), line search along βx.
    Given cost_advantages, the line search also tests the cost surrogate L_c against cost_slack (cost-aware).

    A zero or non-finite gradient, or a non-positive xᵀFx, skips the update (parameters unchanged) with a warning."""
    params = agent.actor_parameters()
    with torch.no_grad():
        old_dist = agent.distribution(obs)  # π_old, held fixed while θ moves
    objective = surrogate_objective(agent, obs, actions, old_logprobs, advantages)
    g = all_reduce_mean(flat_grad(objective, params))
    old_objective = all_reduce_mean(objective.detach().clone()).item()
    stats = {"grad_norm": g.norm().item(), "xHx": 0.0, "step_norm": 0.0, "acceptance_step": 0,
             "expected_improvement": 0.0, "actual_improvement": 0.0, "kl": 0.0}
    if cost_advantages is not None:
        stats.update({f"rejected_{reason}": 0 for reason in ("not_finite", "no_improvement", "cost", "kl")})
    if not torch.isfinite(g).all():
        warnings.warn("TRPO: non-finite policy gradient; policy update skipped")
        return stats
    if not g.any():  # e.g. every advantage equal, so that the standardized ones are all 0
        warnings.warn("TRPO: the policy gradient is zero (the advantages carry no signal); policy update skipped")
        return stats

    Fvp = fisher_vector_product(agent, obs[:: args.fvp_sample_freq], args.cg_damping)
    x = conjugate_gradient(Fvp, g, args.cg_iters)
    xHx = (x @ Fvp(x)).item()
    stats["xHx"] = xHx
    if not (math.isfinite(xHx) and xHx > 0):
        warnings.warn(f"TRPO: xᵀFx = {xHx} is not positive; policy update skipped")
        return stats
    full_step = max_step_size(xHx, args.target_kl) * x

    def evaluate():
        # averaged over workers, so that every worker accepts the same step
        with torch.no_grad():
            values = [surrogate_objective(agent, obs, actions, old_logprobs, advantages),
                      mean_kl(old_dist, agent.distribution(obs))]
            if cost_advantages is not None:  # L_c(θ) = mean[ratio · Â_c]
                values.append(surrogate_objective(agent, obs, actions, old_logprobs, cost_advantages))
            return all_reduce_mean(torch.stack(values)).tolist()

    old_cost_objective = all_reduce_mean(cost_advantages.mean()).item() if cost_advantages is not None else 0.0
    old_params = flat_params(params)
    acceptance_step, fraction, new_objective, kl, rejected = backtracking_line_search(
        params, old_params, full_step, evaluate, old_objective, args.target_kl, args.backtrack_coef,
        args.backtrack_iters, old_cost_objective, cost_slack)
    stats.update(acceptance_step=acceptance_step, kl=kl, step_norm=(fraction * full_step).norm().item(),
                 expected_improvement=fraction * (g @ full_step).item(),  # first-order model: g·(fraction βx)
                 actual_improvement=new_objective - old_objective)
    if cost_advantages is not None:
        stats.update({f"rejected_{reason}": count for reason, count in rejected.items()})
    return stats

def num_critic_minibatches(batch_size: int, critic_minibatch_size: int) -> int:
    """How many minibatches each critic pass takes: ceil(batch / size), the whole batch (over all workers)."""
    return -(-batch_size // critic_minibatch_size)

def critic_update(critics: list, obs, args: Args) -> list:
    """Fits each critic V_φ (given as (network, optimizer, returns)) to its GAE returns: update_epochs passes
    over shuffled minibatches of about critic_minibatch_size, minimizing
    mean (V_φ(s) − R)² + critic_l2_coef · ‖φ‖², with the gradient norm
    clipped to max_grad_norm. The reward and cost critics share the minibatches, so a cost critic draws no
    random numbers of its own. Returns each critic's mean squared error over the last pass."""
    # With N workers, each splits its share of the batch into the same number of minibatches: minibatch k has
    # the same size on every worker, so the workers' mean gradient is that of the whole minibatch.
    num_minibatches = num_critic_minibatches(len(obs) * world_size(), args.critic_minibatch_size)
    squared_errors = [[] for _ in critics]
    for _ in range(args.update_epochs):
        squared_errors = [[] for _ in critics]
        for batch in torch.randperm(len(obs), device=obs.device).tensor_split(num_minibatches):
            for (network, optimizer, returns), errors in zip(critics, squared_errors):
                params = list(network.parameters())
                mse = (network(obs[batch]).squeeze(-1) - returns[batch]).pow(2).mean()
                loss = mse + args.critic_l2_coef * sum(p.pow(2).sum() for p in params)
                optimizer.zero_grad()
                loss.backward()
                average_gradients(params)
                nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                optimizer.step()
                errors.append(mse.item())
    return [float(np.mean(errors)) for errors in squared_errors]

def linear_schedule(start: float, end: float, progress: float) -> float:
    """start + (end − start) · progress, for progress from 0 (first iteration) to 1."""
    return start + (end - start) * progress

def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 − Var[R − V] / Var[R]: 1 is a perfect critic, 0 no better than a constant."""
    var_target = np.var(target)
    return float("nan") if var_target == 0 else float(1 - np.var(target - predicted) / var_target)


# ---------------------------------------------------------------------------------------------------
# Training: one iteration is a rollout, the advantages, λ, one TRPO step, the critics' fit and the logs.
# ---------------------------------------------------------------------------------------------------
@dataclass
class Critic:
    """A value function fitted to the discounted sum of one per-step signal: the reward critic V (its tags
    `losses/value_loss`, ...) or the cost critic V^c (`losses/cost_value_loss`, ...), each with its discount
    and GAE λ. Each step of the rollout, GAE, the fit and the logs go through the list of critics alike."""
    tag_prefix: str
    network: nn.Module
    optimizer: torch.optim.Optimizer
    gamma: float
    gae_lambda: float

    def values(self, obs: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.network(obs).squeeze(-1).cpu().numpy()


def make_critics(agent: Agent, args: Args) -> list:
    """The reward critic, then the cost critic if the agent has one. Their Adam is fused: one kernel for all of
    a critic's parameters, 10-25% faster on these small networks."""
    critics = [Critic("", agent.critic, torch.optim.Adam(agent.critic.parameters(), lr=args.critic_lr, fused=True),
                      args.gamma, args.gae_lambda)]
    if agent.cost_critic is not None:
        critics.append(Critic("cost_", agent.cost_critic, torch.optim.Adam(agent.cost_critic.parameters(),
                                                                           lr=args.critic_lr, fused=True),
                              args.cost_gamma, args.cost_gae_lambda))
    return critics


def open_logs(args: Args, run_name: str, run_dir: str, rank: int, resumed_step: Optional[int]):
    """Rank 0's TensorBoard writer (and wandb run, with --track), with the arguments in args.yaml; on a resumed
    run, purge_step drops what the interrupted run logged after its checkpoint's step. Other ranks log nothing."""
    if rank != 0:
        return SilentWriter()
    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                   config=training_arguments(args), name=run_name, monitor_gym=True, save_code=True)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(run_dir, purge_step=resumed_step + 1 if resumed_step is not None else None)
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(
        f"|{key}|{value}|" for key, value in training_arguments(args).items()))
    with open(f"{run_dir}/args.yaml", "w") as f:
        yaml.safe_dump(training_arguments(args), f, sort_keys=False)
    return writer


def progress_line(global_step: int, total: int, start_step: int, start_time: float, recent_returns, recent_costs) -> str:
    elapsed = time.time() - start_time
    sps = (global_step - start_step) / max(elapsed, 1e-9)
    eta = (total - global_step) / max(sps, 1e-9)
    line = f"step {global_step}/{total} | SPS {sps:.0f} | ETA {eta / 60:.1f} min"
    if recent_returns:
        line += f" | return {np.mean(recent_returns):.2f}"
    if recent_costs:
        line += f" | cost {np.mean(recent_costs):.2f}"
    return line


def record_episodes(infos: dict, run: "RunState", writer) -> list:
    """Logs the episodes that ended in the last step (return, length, cost) and keeps the last 20 of each in run;
    returns their costs (the J_c samples of this rollout)."""
    costs = []
    for info in infos["final_info"][infos["_final_info"]] if "final_info" in infos else []:
        if "episode" not in info:
            continue
        run.recent_returns.append(np.asarray(info["episode"]["r"]).item())
        run.recent_lengths.append(np.asarray(info["episode"]["l"]).item())
        writer.add_scalar("charts/episodic_return", run.recent_returns[-1], run.global_step)
        writer.add_scalar("charts/episodic_length", run.recent_lengths[-1], run.global_step)
        if "episode_cost" in info:
            run.recent_costs.append(info["episode_cost"])
            costs.append(info["episode_cost"])
            writer.add_scalar("charts/episodic_cost", info["episode_cost"], run.global_step)
    return costs


def finish(args: Args, run: "RunState", envs, writer, run_name: str, run_dir: str, rank: int, device,
           start_step: int, start_time: float, stopped_by: int) -> dict:
    """Closes the run: the last progress line, then, with --save-model and unless stopped by a signal, the model
    saved and evaluated (rank 0). Returns the run's summary."""
    if rank == 0 and not stopped_by:
        print(progress_line(run.global_step, args.total_timesteps, start_step, start_time, run.recent_returns,
                            run.recent_costs), flush=True)
    envs.close()
    result = {"global_step": run.global_step, "run_name": run_name,
              "episodic_return": float(np.mean(run.recent_returns)) if run.recent_returns else float("nan"),
              "episodic_cost": float(np.mean(run.recent_costs)) if run.recent_costs else float("nan"),
              "sps": int((run.global_step - start_step) / (time.time() - start_time)),
              "lagrange_multiplier": run.lagrange["multiplier"], "agent": run.agent,
              "obs_normalizer": run.obs_normalizer, "stopped_by_signal": stopped_by or None}
    if args.save_model and rank == 0 and not stopped_by:
        model_path = f"{run_dir}/{args.exp_name}.model"
        save_model(model_path, run.agent, run.obs_normalizer, args.env_id)
        print(f"model saved to {model_path}")
        evaluation = evaluate(model_path, args.env_id, args.eval_episodes, seed=args.seed, device=str(device))
        for episode, episodic_return in enumerate(evaluation["returns"]):
            writer.add_scalar("eval/episodic_return", episodic_return, episode)
        print(evaluation_line(evaluation))
        result.update(model_path=model_path, eval_return=evaluation["mean_return"], eval_cost=evaluation["mean_cost"])
    writer.close()
    if args.track and rank == 0:
        import wandb

        wandb.finish()
    return result


def train(args: Args) -> dict:
    """Trains one run, in this process or, under torchrun (WORLD_SIZE > 1), as one of its data-parallel workers;
    rank 0 logs and saves. Everything is read and checked before anything is written."""
    workers, local_rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    checkpoint = None
    if args.resume:
        args, checkpoint = load_checkpoint(args.resume, workers)
    args = validate_args(args, workers)
    device = choose_device(args.cuda, local_rank)  # (a resumed run's own --cuda)
    if workers > 1 and not dist.is_initialized():
        join_process_group(device)
    with stop_on_signals() as stop_signal:
        result = train_worker(args, checkpoint, device, stop_signal)
    if world_size() > 1:
        dist.barrier()  # every worker leaves together, once rank 0 has saved: none exits while another still works
    return result


def train_worker(args: Args, checkpoint: Optional[dict], device: torch.device, stop_signal: list) -> dict:
    """The training run of one worker (the only one without torchrun), from the start or from a checkpoint; stops
    early, with every other worker, once one of them has received a signal in stop_signal."""
    workers, rank = world_size(), dist.get_rank() if world_size() > 1 else 0
    steps_per_worker = args.num_steps // workers
    num_iterations = args.total_timesteps // (args.num_envs * args.num_steps)
    run_name = [checkpoint["run_name"] if checkpoint else
                f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"]
    if workers > 1:  # (rank 0's clock names the run)
        dist.broadcast_object_list(run_name, src=0)
    run_name = run_name[0]
    run_dir = os.path.dirname(os.path.abspath(args.resume)) if checkpoint else f"runs/{run_name}"

    # Seeding: each worker its own streams
    random.seed(args.seed + rank)
    np.random.seed(args.seed + rank)
    torch.manual_seed(args.seed + rank)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_num_threads(args.torch_threads)

    # Build the envs, the logs, the agent and its critics; then restore a checkpoint's state, if resuming
    envs = make_vector_env(args, run_name)
    writer = open_logs(args, run_name, run_dir, rank, checkpoint["global_step"] if checkpoint else None)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    action_low, action_high = envs.single_action_space.low, envs.single_action_space.high
    agent = Agent(obs_dim, act_dim, args.hidden_sizes, args.log_std_init, args.activation, args.weight_init,
                  cost_critic=args.use_cost_critic or args.cost_limit is not None).to(device)
    if workers > 1:  # rank 0's initial weights for everyone
        for tensor in agent.state_dict().values():
            dist.broadcast(tensor, src=0)
    critics = make_critics(agent, args)
    obs_normalizer = ObservationNormalizer(obs_dim, args.obs_clip, args.normalize_obs, synchronized=workers > 1)
    reward_scaler = RewardScaler(args.num_envs, args.gamma) if args.normalize_reward else None
    run = RunState(agent, critics, obs_normalizer, reward_scaler, initial_lagrange_state(args.lagrange_multiplier_init))
    if checkpoint is not None:
        run.restore(checkpoint, rank)

    # Rollout storage, preallocated in NumPy: per-step writes into torch tensors cost more than the writes.
    obs = np.zeros((steps_per_worker, args.num_envs, obs_dim), np.float32)
    actions = np.zeros((steps_per_worker, args.num_envs, act_dim), np.float32)
    action_means = np.zeros((steps_per_worker, args.num_envs, act_dim), np.float32)
    signals = np.zeros((len(critics), steps_per_worker, args.num_envs), np.float32)  # each critic's: reward, cost
    dones = np.zeros((steps_per_worker, args.num_envs), np.float32)

    # Episodes run on across updates: the envs are reset once, here (OmniSafe resets every epoch, which truncates
    # episodes early and, on Safety-Gymnasium, rebuilds the MuJoCo model). A resumed run starts new episodes, and
    # env i of worker r is seeded seed + r × num_envs + i (+ the step count on resume): no two envs share a seed.
    env_seed = first_env_seed(args.seed, rank, args.num_envs)
    raw_obs, _ = envs.reset(seed=env_seed + run.global_step)
    envs.action_space.seed(env_seed)
    next_raw_obs, next_done = raw_obs.reshape(args.num_envs, obs_dim), np.zeros(args.num_envs, np.float32)
    if checkpoint is None:  # (a checkpoint's statistics already count the observation this one replaces)
        obs_normalizer.update(next_raw_obs)
    elif rank == 0:
        print(f"resuming {run_name} at step {run.global_step}: weights, optimizers, statistics, λ, step and random "
              f"streams as saved; every env starts a new episode (episodes in progress are not saved)")

    checkpoint_path = f"{run_dir}/checkpoint.pt"
    last_checkpoint = run.snapshot(args, run_name)
    start_time = last_print = time.time()
    start_step, stopped_by = run.global_step, 0
    for iteration in range(run.iteration + 1, num_iterations + 1):
        if args.std_schedule is not None:
            progress = (iteration - 1) / max(num_iterations - 1, 1)
            agent.actor_logstd.data.fill_(math.log(linear_schedule(*args.std_schedule, progress)))
        std = agent.actor_logstd.detach().exp()  # σ of this rollout's policy
        rollout_costs = []  # the episodic costs J_c of the episodes that end in this rollout

        # Rollout: num_steps steps of every env with the current policy (num_steps / N on each of N workers).
        for step in range(steps_per_worker):
            if stop_signal:
                break
            run.global_step += args.num_envs * workers
            # normalized when used, so that a rollout's first observation sees the statistics synced after the last
            obs[step] = obs_normalizer(next_raw_obs)
            dones[step] = next_done
            with torch.inference_mode():
                # a ~ N(μ_θ(s), σ²), the draw of agent.gaussian(mean).sample() without building a distribution
                # each step; the log-probabilities of the old policy come from the stored means after the rollout.
                mean = agent.actor_mean(torch.from_numpy(obs[step]).to(device))
                actions[step] = torch.normal(mean, std.expand_as(mean)).cpu().numpy()
                action_means[step] = mean.cpu().numpy()
            # Only the env sees the clipped action; the stored action (and its log-probability) is the raw sample.
            raw_obs, reward, terminations, truncations, infos = envs.step(np.clip(actions[step], action_low,
                                                                                  action_high))
            done = terminations | truncations
            step_signals = [reward_scaler(reward, done) if reward_scaler is not None else reward]
            if len(critics) > 1:
                step_signals.append(step_costs(infos, args.num_envs))
            bootstrap = truncations & ~terminations
            if bootstrap.any():  # each signal's time-limit bootstrap, from its own critic's value of s_final
                final_obs = torch.from_numpy(obs_normalizer(np.stack(infos["final_observation"][bootstrap])
                                                            .reshape(-1, obs_dim))).to(device)
                for k, critic in enumerate(critics):
                    final_values = np.zeros(args.num_envs, np.float32)
                    final_values[bootstrap] = critic.values(final_obs)
                    step_signals[k] = add_truncation_bootstrap(step_signals[k], bootstrap, final_values, critic.gamma)
            signals[:, step] = step_signals
            next_raw_obs, next_done = raw_obs.reshape(args.num_envs, obs_dim), done.astype(np.float32)
            obs_normalizer.update(next_raw_obs)
            rollout_costs += record_episodes(infos, run, writer)
            if time.time() - last_print >= 3.0 and rank == 0:
                last_print = time.time()
                print(progress_line(run.global_step, args.total_timesteps, start_step, start_time, run.recent_returns,
                                    run.recent_costs), flush=True)
        # A signal stops every worker here, together: the checkpoint of this iteration's start is written.
        stopped_by = agreed_stop_signal(stop_signal, device)
        if stopped_by:
            if rank == 0:
                write_checkpoint(checkpoint_path, last_checkpoint)
                print(f"stopped by signal {stopped_by} at step {run.global_step}; checkpoint of step "
                      f"{last_checkpoint['global_step']} written; continue with --resume {checkpoint_path}", flush=True)
            if workers > 1:
                dist.barrier()  # no worker exits (and makes torchrun stop the others) before the checkpoint is written
            break
        synchronize_statistics(obs_normalizer, device)  # (under torchrun)

        # Advantages: GAE(λ) of each critic's signal, bootstrapped from its value of the next observation. The
        # values of the whole rollout come from one batched call after it (the critics do not change during it).
        b_obs = torch.from_numpy(obs.reshape(-1, obs_dim)).to(device)
        next_obs = torch.from_numpy(obs_normalizer(next_raw_obs)).to(device)
        values, advantages, returns = [], [], []
        for critic, critic_signal in zip(critics, signals):
            values.append(critic.values(b_obs).reshape(steps_per_worker, args.num_envs))
            advantage, ret = compute_gae(critic_signal, values[-1], dones, critic.values(next_obs), next_done,
                                         critic.gamma, critic.gae_lambda)
            advantages.append(torch.from_numpy(advantage.reshape(-1)).to(device))
            returns.append(ret.reshape(-1))
        b_advantages, b_cost_advantages = standardize(advantages[0]), None
        if len(critics) > 1:
            b_cost_advantages = standardize(advantages[1]) if args.standardize_cost_advantages else advantages[1]
        b_actions = torch.from_numpy(actions.reshape(-1, act_dim)).to(device)
        with torch.no_grad():  # log π_old(a_t|s_t), from the means the actions were drawn with
            b_means = torch.from_numpy(action_means.reshape(-1, act_dim)).to(device)
            b_logprobs = agent.gaussian(b_means).log_prob(b_actions)

        # λ (TRPO-Lagrangian) moves first, on the costs of the episodes that ended in this rollout (if any); the
        # policy step then uses the penalized advantage.
        if args.cost_limit is not None:
            mean_episode_cost = mean_over_workers(rollout_costs, device)
            if mean_episode_cost is not None:
                run.lagrange = update_lagrange_state(run.lagrange, mean_episode_cost, args)
            b_advantages = penalized_advantages(b_advantages, b_cost_advantages, run.lagrange["multiplier"])

        # Update: one TRPO step on the policy, then the critics. The cost-aware line search allows the cost
        # surrogate a rise of max(−c, 0), c = J_c − d from the latest rollout in which episodes ended.
        cost_slack = math.inf
        if args.cost_line_search and run.lagrange["mean_episode_cost"] is not None:
            cost_slack = max(args.cost_limit - run.lagrange["mean_episode_cost"], 0.0)
        trpo_stats = trpo_policy_update(agent, b_obs, b_actions, b_logprobs, b_advantages, args,
                                        b_cost_advantages if args.cost_line_search else None, cost_slack)
        if args.anneal_lr:
            for critic in critics:
                critic.optimizer.param_groups[0]["lr"] = linear_schedule(args.critic_lr, 0.0,
                                                                         (iteration - 1) / num_iterations)
        critic_losses = critic_update([(critic.network, critic.optimizer, torch.from_numpy(ret).to(device))
                                       for critic, ret in zip(critics, returns)], b_obs, args)
        run.iteration = iteration

        # Logging
        global_step = run.global_step
        writer.add_scalar("charts/SPS", int((global_step - start_step) / (time.time() - start_time)), global_step)
        writer.add_scalar("charts/learning_rate", critics[0].optimizer.param_groups[0]["lr"], global_step)
        for critic, loss, value, ret in zip(critics, critic_losses, values, returns):
            writer.add_scalar(f"losses/{critic.tag_prefix}value_loss", loss, global_step)
            writer.add_scalar(f"losses/{critic.tag_prefix}explained_variance",
                              explained_variance(value.reshape(-1), ret), global_step)
        if args.cost_limit is not None:
            writer.add_scalar("charts/lagrange_multiplier", run.lagrange["multiplier"], global_step)
        for name, value in trpo_stats.items():
            writer.add_scalar(f"trpo/{name}", value, global_step)
        with torch.no_grad():
            writer.add_scalar("policy/entropy", agent.distribution(b_obs).entropy().mean().item(), global_step)
            writer.add_scalar("policy/std", agent.actor_logstd.exp().mean().item(), global_step)

        # Checkpoint: the state after this iteration, kept for a signal and written every checkpoint_every iterations
        last_checkpoint = run.snapshot(args, run_name)
        if rank == 0 and args.checkpoint_every and iteration % args.checkpoint_every == 0 \
                and iteration < num_iterations:
            write_checkpoint(checkpoint_path, last_checkpoint)

    stopped_by = stopped_by or agreed_stop_signal(stop_signal, device)  # (a signal after the last iteration's check)
    return finish(args, run, envs, writer, run_name, run_dir, rank, device, start_step, start_time, stopped_by)


# ---------------------------------------------------------------------------------------------------
# Saving and evaluation: a model file holds the weights and the observation statistics
# ---------------------------------------------------------------------------------------------------
def save_model(path: str, agent: Agent, obs_normalizer: ObservationNormalizer, env_id: str):
    torch.save({"format": "trpo_continuous", "env_id": env_id, "hidden_sizes": list(agent.hidden_sizes),
                "activation": agent.activation, "weight_init": agent.weight_init,
                "cost_critic": agent.cost_critic is not None,
                "obs_dim": agent.actor_mean[0].in_features, "act_dim": agent.actor_logstd.numel(),
                "agent": agent.state_dict(), "obs_normalizer": obs_normalizer.state_dict()}, path)

def load_model(path: str, device="cpu"):
    """Returns (agent, obs_normalizer, checkpoint); one-line UsageError for a missing or foreign file."""
    if not os.path.isfile(path):
        raise UsageError(f"no model file at {path!r} (train with --save-model to write one)")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        if checkpoint.get("format") != "trpo_continuous":
            raise ValueError("not a trpo_continuous.py model")
        agent = Agent(checkpoint["obs_dim"], checkpoint["act_dim"], checkpoint["hidden_sizes"],
                      activation=checkpoint.get("activation", "tanh"),
                      cost_critic=checkpoint.get("cost_critic", False)).to(device)
        agent.load_state_dict(checkpoint["agent"])
        obs_normalizer = ObservationNormalizer(checkpoint["obs_dim"], clip=math.inf)
        obs_normalizer.load_state_dict(checkpoint["obs_normalizer"])
    except Exception as error:
        raise UsageError(f"{path!r} is not a model saved by trpo_continuous.py ({type(error).__name__})") from None
    return agent, obs_normalizer, checkpoint

def evaluate(model_path: str, env_id: Optional[str] = None, eval_episodes: int = 10, seed: int = 0,
             device: str = "cpu") -> dict:
    """Replays a saved model deterministically (the action is the policy mean, clipped to the bounds) with
    the observation statistics saved beside it, for `eval_episodes` episodes, on env_id (unset: the model's own).
    Returns mean/std of the episodic return, the mean episodic cost (Safety envs) and the raw lists."""
    agent, obs_normalizer, checkpoint = load_model(model_path, device)
    env_id = env_id or checkpoint["env_id"]
    if eval_episodes <= 0:
        raise UsageError(f"--eval-episodes must be positive, got {eval_episodes}")
    check_env(env_id)
    env = make_env(env_id, 0, False, "")()
    if env.observation_space.shape != (checkpoint["obs_dim"],) or env.action_space.shape != (checkpoint["act_dim"],):
        env.close()
        raise UsageError(f"the model in {model_path!r} was trained on {checkpoint['env_id']} "
                         f"(obs {checkpoint['obs_dim']}, act {checkpoint['act_dim']}); {env_id} does not match")
    returns, costs = [], []
    obs, _ = env.reset(seed=seed)
    while len(returns) < eval_episodes:
        with torch.inference_mode():
            obs_tensor = torch.as_tensor(obs_normalizer(obs[None]), device=device)
            action = agent.distribution(obs_tensor).mean[0].cpu().numpy()
        obs, _, terminated, truncated, info = env.step(np.clip(action, env.action_space.low, env.action_space.high))
        if terminated or truncated:
            returns.append(np.asarray(info["episode"]["r"]).item())
            costs.append(info.get("episode_cost", float("nan")))
            obs, _ = env.reset()
    env.close()
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "mean_cost": float(np.mean(costs)), "returns": returns, "costs": costs}

def evaluation_line(evaluation: dict) -> str:
    line = (f"evaluation over {len(evaluation['returns'])} episodes: return {evaluation['mean_return']:.2f} "
            f"± {evaluation['std_return']:.2f}")
    return line + (f", cost {evaluation['mean_cost']:.2f}" if math.isfinite(evaluation["mean_cost"]) else "")


# ---------------------------------------------------------------------------------------------------
# Checkpoints and signals. A checkpoint is plain data (tensors, numbers, strings, lists and dicts), so that it
# loads with torch.load(weights_only=True), which runs no code from the file. It holds everything a run needs
# to continue exactly (weights, optimizers, statistics, λ, step, random streams) except the episodes in
# progress: a resumed run starts a new episode in every env.
# ---------------------------------------------------------------------------------------------------
def training_arguments(args: Args) -> dict:
    """The run's arguments as args.yaml and checkpoints hold them: how it trains, not how it was launched."""
    return {name: value for name, value in dataclasses.asdict(args).items() if name not in LAUNCH_ARGUMENTS}

def random_states() -> dict:
    """Python's, NumPy's and torch's random streams, as lists and tensors."""
    version, internal, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": [version, list(internal), gauss_next],
            "numpy": [torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

def set_random_states(states: dict):
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

@dataclass
class RunState:
    """Everything a run changes as it trains, in one place: what a checkpoint saves and a resumed run restores.
    The networks and the critics' optimizers, the statistics, λ and its update's memory, the step and iteration
    counts and the last 20 episodes; with them, each worker's random streams."""
    agent: Agent
    critics: list
    obs_normalizer: ObservationNormalizer
    reward_scaler: Optional[RewardScaler]
    lagrange: dict
    global_step: int = 0
    iteration: int = 0  # iterations completed
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=20))
    recent_costs: deque = field(default_factory=lambda: deque(maxlen=20))
    recent_lengths: deque = field(default_factory=lambda: deque(maxlen=20))

    def snapshot(self, args: Args, run_name: str) -> Optional[dict]:
        """This state as a checkpoint, on rank 0 (None on the other workers, which send it their own part: their
        random streams and statistics)."""
        worker = {"random_states": random_states(), "obs_normalizer": self.obs_normalizer.state_dict(),
                  "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler is not None else None}
        workers = gather_on_rank0(worker)
        if workers is None:
            return None
        return {"format": "trpo_continuous checkpoint", "args": training_arguments(args), "run_name": run_name,
                "global_step": self.global_step, "iteration": self.iteration, "lagrange": copy.deepcopy(self.lagrange),
                "recent_episodes": [list(self.recent_returns), list(self.recent_costs), list(self.recent_lengths)],
                "workers": workers, "agent": {key: value.detach().cpu().clone()
                                              for key, value in self.agent.state_dict().items()},
                "optimizers": [copy.deepcopy(critic.optimizer.state_dict()) for critic in self.critics]}

    def restore(self, checkpoint: dict, rank: int):
        """Puts a snapshot back, with this worker's own statistics and random streams."""
        worker = checkpoint["workers"][rank]
        self.agent.load_state_dict(checkpoint["agent"])
        for critic, state in zip(self.critics, checkpoint["optimizers"]):
            critic.optimizer.load_state_dict(state)
        self.obs_normalizer.load_state_dict(worker["obs_normalizer"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(worker["reward_scaler"])
        self.global_step, self.iteration = checkpoint["global_step"], checkpoint["iteration"]
        self.lagrange = checkpoint["lagrange"]
        for recent, saved in zip([self.recent_returns, self.recent_costs, self.recent_lengths],
                                 checkpoint["recent_episodes"]):
            recent.extend(saved)
        set_random_states(worker["random_states"])

def write_checkpoint(path: str, checkpoint: dict):
    """Atomically: a crash while writing leaves the previous checkpoint whole."""
    torch.save(checkpoint, path + ".tmp")
    os.replace(path + ".tmp", path)

def load_checkpoint(path: str, workers: int) -> tuple:
    """Returns (args, checkpoint) of a checkpoint.pt; one-line UsageError for a missing, corrupt or foreign file,
    or one that would run code when unpickled (weights_only=True refuses it)."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path!r} (runs write runs/<run_name>/checkpoint.pt, see --checkpoint-every)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if checkpoint.get("format") != "trpo_continuous checkpoint":
            raise ValueError("not a trpo_continuous.py checkpoint")
        args = Args(**checkpoint["args"])
    except Exception as error:
        reason = " ".join(str(error).split())[:80]  # one line, whatever the error's message
        raise UsageError(f"{path!r} is not a checkpoint written by this trpo_continuous.py "
                         f"({type(error).__name__}: {reason})") from None
    if len(checkpoint["workers"]) != workers:
        raise UsageError(f"{path!r} was written by {len(checkpoint['workers'])} worker(s); resume it with "
                         f"torchrun --nproc_per_node {len(checkpoint['workers'])}" if len(checkpoint["workers"]) > 1
                         else f"{path!r} was written by one process; resume it without torchrun")
    return dataclasses.replace(args, resume=path), checkpoint

@contextlib.contextmanager
def stop_on_signals():
    """SIGINT (Ctrl-C) and SIGTERM (a scheduler's pre-emption) ask the run to stop: yields the list that receives
    their number. A second signal acts as usual (Ctrl-C twice kills); the handlers are restored on exit."""
    stop_signal, previous_handlers = [], {}

    def request_stop(signum, frame):
        stop_signal.append(signum)
        signal.signal(signum, previous_handlers[signum])

    if threading.current_thread() is threading.main_thread():  # (Python allows handlers only there)
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, request_stop)
    try:
        yield stop_signal
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)

def agreed_stop_signal(stop_signal: list, device) -> int:
    """The signal that stops the run (0: none), the same on every worker: the largest number any of them received.
    Workers stop their rollouts on their own signal, then agree here, so that all leave the same iteration."""
    if world_size() == 1:
        return stop_signal[0] if stop_signal else 0
    flag = torch.tensor([stop_signal[0] if stop_signal else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


# ---------------------------------------------------------------------------------------------------
# Data parallelism. Under `torchrun --nproc_per_node N`, each of the N workers collects num_steps / N steps
# of every rollout; these averages make each worker compute the update a single process would compute on
# the whole batch, so that all workers hold the same parameters throughout. In one process they do nothing.
# ---------------------------------------------------------------------------------------------------
def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """x ← (1/N) Σ_workers x, in place (every worker holds the same number of samples, so the mean of the
    workers' means is the mean over the whole batch)."""
    if world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor

def average_gradients(params: list):
    """∇ ← (1/N) Σ_workers ∇ for every parameter, in one all-reduce of the flattened gradients (one round
    trip per critic minibatch, not one per tensor)."""
    if world_size() > 1:
        flat = all_reduce_mean(torch.cat([p.grad.reshape(-1) for p in params]))
        set_flat_params([p.grad for p in params], flat)

def mean_over_workers(values: list, device) -> Optional[float]:
    """The mean of all workers' values together (None when there are none), e.g. the episodic costs J_c."""
    if world_size() == 1:
        return float(np.mean(values)) if values else None
    total = torch.tensor([float(np.sum(values)), len(values)], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return (total[0] / total[1]).item() if total[1] > 0 else None

def synchronize_statistics(normalizer: ObservationNormalizer, device):
    """Gives every worker the statistics that one process seeing all workers' observations would hold: those of
    the last synchronization merged with each worker's observations since then, in rank order (Chan et al.'s
    formula, RunningMeanStd.update_from_moments). Does nothing in one process."""
    if not normalizer.synchronized:
        return
    own, shape = normalizer.since_sync, normalizer.since_sync.mean.shape
    local = torch.as_tensor(np.concatenate([[own.count], own.mean.ravel(), own.var.ravel()]), dtype=torch.float64)
    gathered = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(gathered, local.to(device))  # (gathered is on the CPU; all_gather copies into it)
    merged = copy.deepcopy(normalizer.synced)
    for increment in gathered:
        count, moments = increment[0].item(), increment[1:].cpu().numpy().reshape(2, *shape)
        merged.update_from_moments(moments[0], moments[1], count)
    normalizer.stats = merged
    normalizer.start_sync_period()

def gather_on_rank0(worker_state: dict) -> Optional[list]:
    """Every worker's state, in rank order, on rank 0 (None on the others)."""
    if world_size() == 1:
        return [worker_state]
    gathered = [None] * world_size() if dist.get_rank() == 0 else None
    dist.gather_object(worker_state, gathered, dst=0)
    return gathered

def choose_device(cuda: bool, local_rank: int = 0) -> torch.device:
    """This worker's device: with --cuda and a GPU, the GPU of its local rank (torchrun: one GPU per worker)."""
    if cuda and not torch.cuda.is_available():
        print("warning: --cuda given but no CUDA device is available; training on the CPU", file=sys.stderr)
    return torch.device("cuda", local_rank) if cuda and torch.cuda.is_available() else torch.device("cpu")

def process_group_backend(device: torch.device) -> str:
    """The collectives' backend: nccl between GPUs, gloo between CPU workers."""
    return "nccl" if device.type == "cuda" else "gloo"

def join_process_group(device: torch.device):
    """Joins the other torchrun workers, once per process: the group stays for later train() calls (creating it a
    second time in one process can hang on the rendezvous keys of the first). leave_process_group ends it."""
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before any collective: object collectives use the current device
    dist.init_process_group(process_group_backend(device))
    atexit.register(leave_process_group)  # (for callers of train() that do not call it themselves)


def leave_process_group():
    """Destroys the process group, if there is one, while the interpreter is fully alive: gloo's threads, torn
    down later at interpreter exit, can abort the process."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

class SilentWriter:
    """Stands in for the SummaryWriter on workers other than rank 0: only rank 0 logs."""

    def add_scalar(self, *args, **kwargs):
        pass

    add_text = close = add_scalar


# ---------------------------------------------------------------------------------------------------
# Command line: argument and env checks (one-line errors before anything is written), then main
# ---------------------------------------------------------------------------------------------------
class UsageError(Exception):
    """A problem with the user's input; the command line prints its message as one line, without a traceback."""

def validate_args(args: Args, workers: int = 1) -> Args:
    """Check the arguments before anything is built or written, the most basic first: the env (its id, its action
    space, its cost where one is needed), then each number, then the sizes. `workers` data-parallel workers
    (torchrun) share each rollout: num_steps / workers steps each. Fills in the default env id."""
    args = dataclasses.replace(args, env_id=args.env_id or DEFAULT_ENV_ID)
    check_env(args.env_id, needs_cost=args.use_cost_critic or args.cost_limit is not None)
    if args.capture_video:
        check_rendering(args.env_id)
    if args.track:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UsageError("--track needs wandb: pip install wandb") from None
    positive = ["total_timesteps", "num_envs", "num_steps", "target_kl", "cg_iters", "backtrack_iters",
                "fvp_sample_freq", "critic_lr", "update_epochs", "critic_minibatch_size", "eval_episodes",
                "torch_threads", "obs_clip"]
    for name in positive:
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ["cg_damping", "critic_l2_coef", "max_grad_norm", "lagrange_lr", "lagrange_multiplier_init",
                 "checkpoint_every", "pid_kp", "pid_ki", "pid_kd"]:
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be non-negative, got {getattr(args, name)}")
    for name in ["gamma", "gae_lambda", "cost_gamma", "cost_gae_lambda"]:
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")
    if not 0.0 < args.backtrack_coef < 1.0:
        raise UsageError(f"--backtrack-coef must lie in (0, 1), got {args.backtrack_coef}")
    if not args.hidden_sizes or min(args.hidden_sizes) <= 0:
        raise UsageError(f"--hidden-sizes needs one or more positive sizes, got {args.hidden_sizes}")
    if args.std_schedule is not None and min(args.std_schedule) <= 0:
        raise UsageError(f"--std-schedule needs two positive standard deviations, got {args.std_schedule}")
    if args.cost_limit is not None and args.cost_limit < 0:
        raise UsageError(f"--cost-limit must be non-negative, got {args.cost_limit}")
    if args.cost_line_search and args.cost_limit is None:
        raise UsageError("--cost-line-search tests the cost against the limit: give --cost-limit too")
    batch_size = args.num_envs * args.num_steps
    if args.num_steps % workers != 0:
        raise UsageError(f"--num-steps {args.num_steps} cannot be shared by {workers} workers; "
                         f"choose a multiple of {workers}")
    if batch_size // workers < num_critic_minibatches(batch_size, args.critic_minibatch_size):
        raise UsageError(f"--critic-minibatch-size {args.critic_minibatch_size} gives each of {workers} workers "
                         f"less than one step per minibatch; raise it to at least {workers}")
    if args.total_timesteps < batch_size:
        raise UsageError(f"--total-timesteps {args.total_timesteps} is less than one batch of {batch_size} "
                         f"(num_envs × num_steps); raise it or lower --num-steps")
    return args

# Safety-Gymnasium is imported only for `Safety*` ids, and on Python >= 3.11 only through this block:
# its asset dataclasses declare numpy arrays as field defaults (e.g. `color = np.array(...)`), which
# Python 3.11's dataclasses reject as mutable. While it imports, each such default becomes
# `field(default_factory=value.copy)`: the same value, copied for every instance.
def import_safety_gymnasium():
    if "safety_gymnasium" in sys.modules:
        return sys.modules["safety_gymnasium"]
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
        with warnings.catch_warnings():  # gymnasium-robotics warns about unrelated Adroit envs on import
            warnings.simplefilter("ignore")
            import safety_gymnasium
    finally:
        dataclasses.dataclass = original_dataclass
    return safety_gymnasium

def is_safety_env(env_id: str) -> bool:
    return env_id.startswith("Safety")

def check_env(env_id: str, needs_cost: bool = False):
    """Fail early, with one line, on an id that no registry knows, an env whose actions are not a Box, or (when
    `needs_cost`) an env whose steps report no info["cost"]. Every Safety-Gymnasium task passes the last two;
    another env is built once, reset and stepped once to find out."""
    if is_safety_env(env_id):
        if env_id not in import_safety_gymnasium().utils.registration.safe_registry:
            raise UsageError(f"unknown Safety-Gymnasium env id {env_id!r} (e.g. SafetyPointGoal1-v0, "
                             f"SafetyHalfCheetahVelocity-v1)")
        return
    try:
        gym.spec(env_id)
    except gym.error.Error as error:
        raise UsageError(f"unknown env id {env_id!r}: {error}") from None
    env = gym.make(env_id)
    try:
        if not isinstance(env.action_space, gym.spaces.Box):
            hint = " use trpo_discrete.py" if isinstance(env.action_space, gym.spaces.Discrete) else ""
            raise UsageError(f"{env_id} has a {type(env.action_space).__name__} action space; "
                             f"trpo_continuous.py needs a Box action space;{hint}")
        if needs_cost:
            env.reset(seed=0)
            if "cost" not in env.step(env.action_space.sample())[-1]:
                raise UsageError(f"{env_id} reports no per-step info['cost']; --use-cost-critic and "
                                 f"--cost-limit need an env that does (every Safety-Gymnasium task)")
    finally:
        env.close()

def check_rendering(env_id: str):
    """`--capture-video` needs moviepy and a working renderer: fail before training, with one line, if either is missing."""
    try:
        import moviepy  # noqa: F401  (gymnasium's RecordVideo writes the files with it)
    except ImportError:
        raise UsageError("--capture-video needs moviepy: pip install moviepy") from None
    try:
        env = make_env(env_id, 0, False, "")()
        env.unwrapped.render_mode = "rgb_array"
        env.reset(seed=0)
        frame = env.render()
        env.close()
    except Exception as error:
        raise UsageError(f"--capture-video: cannot render {env_id} here ({type(error).__name__}: {error}); "
                         f"for MuJoCo try MUJOCO_GL=egl or MUJOCO_GL=osmesa") from None
    if frame is None:
        raise UsageError(f"--capture-video: {env_id} returned no frame in rgb_array mode")

def parse_args(argv=None) -> Args:
    """Command line → Args. With `--config PATH`, the yaml file's values become the defaults that flags override."""
    import argparse

    import tyro

    argv = sys.argv[1:] if argv is None else list(argv)
    config_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    config_parser.add_argument("--config")
    config_path = config_parser.parse_known_args(argv)[0].config
    if config_path is None:
        return tyro.cli(Args, args=argv)
    if not os.path.isfile(config_path):
        raise UsageError(f"no config file at {config_path!r}")
    with open(config_path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise UsageError(f"{config_path!r} is not a yaml mapping of Args fields")
    unknown = sorted(set(values) - {field.name for field in dataclasses.fields(Args)})
    if unknown:
        raise UsageError(f"{config_path!r}: unknown argument(s) {unknown}; a config holds Args fields")
    if set(values) & set(LAUNCH_ARGUMENTS):
        raise UsageError(f"{config_path!r}: {', '.join(LAUNCH_ARGUMENTS)} are given on the command line, not in a config")
    # yaml writes tuples (hidden_sizes, std_schedule) as lists; the fields are tuples
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
    return tyro.cli(Args, default=dataclasses.replace(Args(), **values), args=argv)

def main():
    try:
        args = parse_args()
        if args.eval_model:
            print(evaluation_line(evaluate(args.eval_model, args.env_id, args.eval_episodes, args.seed)))
        elif train(args)["stopped_by_signal"] is not None:
            sys.exit(130)  # the shell's code for a run stopped by a signal
    except UsageError as error:
        sys.exit(f"error: {error}")
    finally:
        leave_process_group()


if __name__ == "__main__":
    main()
