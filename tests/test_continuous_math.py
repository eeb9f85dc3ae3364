"""The mathematics of trpo_continuous.py, checked against direct computations."""
import math

import numpy as np
import pytest
import torch

import trpo_continuous as trpo


def tiny_agent(obs_dim=3, act_dim=2, seed=0):
    """A float64 agent small enough for exact Hessians, with a non-trivial log-std."""
    torch.manual_seed(seed)
    agent = trpo.Agent(obs_dim, act_dim, hidden_sizes=(5,)).double()
    with torch.no_grad():
        agent.actor_logstd.copy_(torch.linspace(-0.3, 0.4, act_dim, dtype=torch.float64))
        agent.actor_mean[-1].weight.mul_(50)  # the 0.01 output init would make the mean almost constant
    return agent


def gaussian_kl_by_hand(mu1, std1, mu2, std2):
    """KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) per dimension: log σ2/σ1 + (σ1² + (μ1 − μ2)²) / 2σ2² − ½."""
    return torch.log(std2 / std1) + (std1**2 + (mu1 - mu2) ** 2) / (2 * std2**2) - 0.5


def test_conjugate_gradient_matches_direct_solve():
    generator = torch.Generator().manual_seed(0)
    m = torch.randn(10, 10, dtype=torch.float64, generator=generator)
    A = m @ m.T + 0.5 * torch.eye(10, dtype=torch.float64)
    b = torch.randn(10, dtype=torch.float64, generator=generator)
    x = trpo.conjugate_gradient(lambda v: A @ v, b, iters=10)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-8)


def test_conjugate_gradient_stops_at_residual_tolerance():
    calls = []
    A = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))

    def Avp(v):
        calls.append(1)
        return A @ v

    x = trpo.conjugate_gradient(Avp, torch.tensor([1.0, 1.0], dtype=torch.float64), iters=50)
    torch.testing.assert_close(x, torch.tensor([0.5, 1 / 3], dtype=torch.float64))
    assert len(calls) == 2  # exact after n = 2 steps, then the ‖r‖ < tol test stops it


def test_kl_is_summed_over_action_dimensions():
    old = trpo.Independent(trpo.Normal(torch.zeros(4, 3), torch.ones(4, 3)), 1)
    new = trpo.Independent(trpo.Normal(torch.full((4, 3), 0.5), torch.full((4, 3), 2.0)), 1)
    per_dimension = gaussian_kl_by_hand(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.5), torch.tensor(2.0))
    torch.testing.assert_close(trpo.mean_kl(old, new), 3 * per_dimension)
    # and the agent's own distribution is the joint one: its log-probability is a sum over dimensions
    agent = tiny_agent(act_dim=3)
    obs = torch.randn(6, 3, dtype=torch.float64)
    dist = agent.distribution(obs)
    action = dist.sample()
    mean, std = agent.actor_mean(obs), agent.actor_logstd.exp()
    by_hand = (-((action - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(dist.log_prob(action), by_hand)


def exact_kl_hessian(agent, obs):
    """∇²_θ of the mean KL(π_θold ‖ π_θ) at θ_old, by autograd on a hand-written forward pass and KL."""
    (w1, b1), (w2, b2) = [(layer.weight, layer.bias) for layer in agent.actor_mean if hasattr(layer, "weight")]
    shapes = [w1.shape, b1.shape, w2.shape, b2.shape, agent.actor_logstd.shape]
    theta_old = trpo.flat_params(agent.actor_parameters())
    mu_old = agent.actor_mean(obs).detach()
    std_old = agent.actor_logstd.exp().detach()

    def kl(theta):
        pieces, offset = [], 0
        for shape in shapes:
            n = math.prod(shape)
            pieces.append(theta[offset: offset + n].reshape(shape))
            offset += n
        W1, B1, W2, B2, log_std = pieces
        mu = torch.tanh(obs @ W1.T + B1) @ W2.T + B2
        return gaussian_kl_by_hand(mu_old, std_old, mu, log_std.exp()).sum(-1).mean()

    return torch.autograd.functional.hessian(kl, theta_old)


def test_fisher_vector_product_matches_exact_kl_hessian():
    agent = tiny_agent()
    obs = torch.randn(7, 3, dtype=torch.float64)
    H = exact_kl_hessian(agent, obs)
    damping = 0.1
    for seed in range(3):
        v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(trpo.fisher_vector_product(agent, obs, v, damping), H @ v + damping * v,
                                   rtol=1e-10, atol=1e-10)


def test_step_size_gives_target_kl_in_quadratic_model_and_in_fact():
    agent = tiny_agent()
    obs = torch.randn(50, 3, dtype=torch.float64)
    params = agent.actor_parameters()
    n = trpo.flat_params(params).numel()
    damping, target_kl = 1e-6, 1e-4
    Fvp = lambda v: trpo.fisher_vector_product(agent, obs, v, damping)  # noqa: E731
    # a policy gradient lies in the span of F (it is a mean of score functions), so draw g = F u
    g = Fvp(torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    x = trpo.conjugate_gradient(Fvp, g, iters=3 * n, residual_tol=1e-12)
    xHx = (x @ Fvp(x)).item()
    beta = trpo.max_step_size(xHx, target_kl)
    assert 0.5 * beta**2 * xHx == pytest.approx(target_kl, rel=1e-12)  # quadratic model: ½ (βx)ᵀF(βx) = δ
    with torch.no_grad():
        old = agent.distribution(obs)
    trpo.set_flat_params(params, trpo.flat_params(params) + beta * x)
    with torch.no_grad():
        actual_kl = trpo.mean_kl(old, agent.distribution(obs)).item()
    assert actual_kl == pytest.approx(target_kl, rel=0.05)  # the true KL of a small step matches the model


def test_line_search_restores_parameters_when_every_step_is_rejected():
    agent = tiny_agent()
    params = agent.actor_parameters()
    old = trpo.flat_params(params).clone()
    tried = []

    def never_better():
        tried.append(trpo.flat_params(params).clone())
        return -1.0, 0.0  # the surrogate got worse at every step

    accepted, fraction, objective, kl = trpo.backtracking_line_search(
        params, old, torch.ones_like(old), never_better, old_objective=0.0, target_kl=0.01,
        backtrack_coef=0.5, backtrack_iters=4)
    assert (accepted, fraction, objective, kl) == (0, 0.0, 0.0, 0.0)
    assert torch.equal(trpo.flat_params(params), old)  # exactly, not approximately
    assert [(theta - old)[0].item() for theta in tried] == [1.0, 0.5, 0.25, 0.125]  # backtrack_coef^i


def test_line_search_accepts_first_improving_step_inside_trust_region():
    agent = tiny_agent()
    params = agent.actor_parameters()
    old = trpo.flat_params(params).clone()
    step = torch.ones_like(old)

    def objective_and_kl():  # objective = fraction, kl = fraction²: 1 and 0.5 violate KL ≤ 0.1, 0.25 passes
        fraction_tried = (trpo.flat_params(params) - old)[0].item()
        return fraction_tried, fraction_tried**2

    accepted, fraction, objective, kl = trpo.backtracking_line_search(params, old, step, objective_and_kl, 0.0, 0.1, 0.5, 10)
    assert (accepted, fraction) == (3, 0.25)
    assert kl == pytest.approx(0.0625)
    torch.testing.assert_close(trpo.flat_params(params), old + 0.25 * step)
    # a non-finite surrogate is never accepted
    accepted, *_ = trpo.backtracking_line_search(params, old, step, lambda: (float("nan"), 0.0), 0.0, 0.1, 0.5, 5)
    assert accepted == 0 and torch.equal(trpo.flat_params(params), old)


def test_policy_update_skips_non_finite_gradient_with_a_warning():
    agent = tiny_agent()
    obs = torch.randn(8, 3, dtype=torch.float64)
    with torch.no_grad():
        actions = agent.distribution(obs).sample()
        logprobs = agent.distribution(obs).log_prob(actions)
    advantages = torch.full((8,), float("nan"), dtype=torch.float64)
    before = trpo.flat_params(agent.actor_parameters()).clone()
    with pytest.warns(UserWarning, match="non-finite"):
        stats = trpo.trpo_policy_update(agent, obs, actions, logprobs, advantages, trpo.Args())
    assert stats["acceptance_step"] == 0
    assert torch.equal(trpo.flat_params(agent.actor_parameters()), before)


def test_policy_update_improves_surrogate_within_trust_region():
    agent = tiny_agent()
    obs = torch.randn(64, 3, dtype=torch.float64)
    with torch.no_grad():
        dist = agent.distribution(obs)
        actions = dist.sample()
        logprobs = dist.log_prob(actions)
    advantages = trpo.standardize(actions[:, 0] - actions[:, 1])  # rewards a direction of the action
    args = trpo.Args(target_kl=0.01)
    stats = trpo.trpo_policy_update(agent, obs, actions, logprobs, advantages, args)
    assert stats["acceptance_step"] >= 1
    assert 0 < stats["kl"] <= args.target_kl
    assert stats["actual_improvement"] > 0
    with torch.no_grad():
        assert trpo.mean_kl(dist, agent.distribution(obs)).item() == pytest.approx(stats["kl"])


def test_gae_by_hand_with_termination_and_truncation_bootstrap():
    gamma, lam = 0.9, 0.8
    # One env, 4 steps. Episode A: steps 0-1, truncated by the time limit after step 1 with V(s_final) = 5.
    # Episode B: steps 2-3, terminated after step 3. The next observation begins a new episode.
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    values = np.array([[0.5], [1.0], [1.5], [2.0]])
    truncated = np.array([False, True, False, False])
    final_values = np.array([0.0, 5.0, 0.0, 0.0])
    rewards = trpo.add_truncation_bootstrap(rewards[:, 0], truncated, final_values, gamma)[:, None]
    dones = np.array([[0.0], [0.0], [1.0], [0.0]])  # observation 2 begins episode B
    advantages, returns = trpo.compute_gae(torch.tensor(rewards), torch.tensor(values), torch.tensor(dones),
                                           torch.tensor([7.0]), torch.tensor([1.0]), gamma, lam)
    d1 = 2.0 + gamma * 5.0 - 1.0  # truncated: bootstraps from the final observation's value
    d0 = 1.0 + gamma * 1.0 - 0.5
    d3 = 4.0 - 2.0  # terminated: no bootstrap (the 7.0 belongs to the next episode)
    d2 = 3.0 + gamma * 2.0 - 1.5
    expected = torch.tensor([[d0 + gamma * lam * d1], [d1], [d2 + gamma * lam * d3], [d3]], dtype=torch.float64)
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + torch.tensor(values))


def test_gae_bootstraps_from_next_value_when_rollout_ends_mid_episode():
    advantages, _ = trpo.compute_gae(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[0.0]]),
                                     torch.tensor([10.0]), torch.tensor([0.0]), 0.5, 0.9)
    torch.testing.assert_close(advantages, torch.tensor([[6.0]]))  # 1 + 0.5·10 − 0


def test_running_mean_std_merges_batches_exactly():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    stats = trpo.RunningMeanStd((4,))
    for batch in np.array_split(data, 37):
        stats.update(batch)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4)
    normalizer = trpo.ObservationNormalizer(4, clip=5.0)
    normalizer.stats = stats
    normalized = normalizer(data)
    assert normalized.dtype == np.float32 and np.abs(normalized).max() <= 5.0
    np.testing.assert_allclose(normalized.mean(0), 0.0, atol=1e-3)


def test_reward_scaler_keeps_sign_and_resets_at_episode_end():
    scaler = trpo.RewardScaler(num_envs=2, gamma=0.99)
    rewards = np.array([10.0, -10.0])
    for _ in range(50):
        scaled = scaler(rewards, np.array([False, False]))
    assert scaled[0] > 0 > scaled[1] and abs(scaled[0]) < 10.0
    scaler(rewards, np.array([True, False]))
    assert scaler.discounted_return[0] == 0.0 and scaler.discounted_return[1] != 0.0
