"""The mathematics of both scripts, each step checked against a direct computation.

Most tests run on trpo_continuous.py (Gaussian policy) and trpo_discrete.py (categorical policy), whose update
functions share names and equations; only the policy's output, its KL and the safe-RL parts differ."""
import collections
import math

import numpy as np
import pytest
import torch

from torch.nn.utils import parameters_to_vector, vector_to_parameters

import trpo_continuous
import trpo_discrete

OBS_DIM = 3


@pytest.fixture(params=[trpo_continuous, trpo_discrete], ids=["continuous", "discrete"])
def trpo(request):
    return request.param


def flat(params) -> torch.Tensor:
    """θ as one vector, a copy."""
    return parameters_to_vector(params).detach().clone()


def is_continuous(trpo):
    return trpo is trpo_continuous


def tiny_agent(trpo, seed=0, n_out=None):
    """A float64 agent small enough for exact Hessians: one hidden layer of 5 units."""
    torch.manual_seed(seed)
    n_out = n_out or (2 if is_continuous(trpo) else 4)
    agent = trpo.Agent(OBS_DIM, n_out, trpo.Args(hidden_sizes=(5,))).double()
    head = agent.actor_mean if is_continuous(trpo) else agent.actor
    with torch.no_grad():
        head[-1].weight.mul_(50)  # the 0.01 output init would make the policy almost the same in every state
        if is_continuous(trpo):
            agent.actor_logstd.copy_(torch.linspace(-0.3, 0.4, n_out, dtype=torch.float64))
    return agent, head


def log_prob_by_hand(trpo, agent, output, action):
    """Gaussian: Σ_d −(a − μ)² / 2σ² − log σ − ½ log 2π;  categorical: log softmax(logits)[a]."""
    if is_continuous(trpo):
        std = agent.actor_logstd.exp()
        return (-((action - output) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    return torch.log_softmax(output, -1).gather(-1, action[:, None])[:, 0]


def kl_by_hand(trpo, agent, old_output, new_output, log_std=None):
    """The KL per state, from the network's outputs, written out:
    Gaussian: Σ_d log σ2/σ1 + (σ1² + (μ1 − μ2)²) / 2σ2² − ½;  categorical: Σ_a p1 (log p1 − log p2)."""
    if is_continuous(trpo):
        std1, std2 = agent.actor_logstd.exp().detach(), log_std.exp()
        return (torch.log(std2 / std1) + (std1**2 + (old_output - new_output) ** 2) / (2 * std2**2) - 0.5).sum(-1)
    log_p1, log_p2 = torch.log_softmax(old_output, -1), torch.log_softmax(new_output, -1)
    return (log_p1.exp() * (log_p1 - log_p2)).sum(-1)


def exact_kl_hessian(trpo, agent, head, obs):
    """∇²_θ of the mean KL(π_θold ‖ π_θ) at θ_old, by autograd on a hand-written forward pass and KL."""
    params = agent.actor_parameters()
    shapes = [p.shape for p in params]
    theta_old = flat(params)
    old_output = head(obs).detach()

    def mean_kl(theta):
        pieces, offset = [], 0
        for shape in shapes:
            pieces.append(theta[offset: offset + math.prod(shape)].reshape(shape))
            offset += math.prod(shape)
        W1, B1, W2, B2, *log_std = pieces
        output = torch.tanh(obs @ W1.T + B1) @ W2.T + B2
        return kl_by_hand(trpo, agent, old_output, output, *log_std).mean()

    return torch.autograd.functional.hessian(mean_kl, theta_old)


def sampled_batch(trpo, agent, n):
    obs = torch.randn(n, OBS_DIM, dtype=torch.float64)
    with torch.no_grad():
        dist = agent.distribution(obs)
        actions = dist.sample()
        return obs, dist, actions, dist.log_prob(actions)


def line_search(trpo, params, old, step, evaluate, old_objective, target_kl, coef, iters, old_cost=0.0,
                slack=math.inf):
    """Both scripts' backtracking_line_search; evaluate() gives (L, KL, L_c), and the discrete one ignores L_c."""
    args = trpo.Args(target_kl=target_kl, backtrack_coef=coef, backtrack_iters=iters)
    if is_continuous(trpo):
        return trpo.backtracking_line_search(params, old, step, evaluate, old_objective, old_cost, slack, args)
    return trpo.backtracking_line_search(params, old, step, lambda: evaluate()[:2], old_objective, args)


def test_conjugate_gradient_matches_direct_solve(trpo):
    generator = torch.Generator().manual_seed(0)
    m = torch.randn(10, 10, dtype=torch.float64, generator=generator)
    A = m @ m.T + 0.5 * torch.eye(10, dtype=torch.float64)
    b = torch.randn(10, dtype=torch.float64, generator=generator)
    x = trpo.conjugate_gradient(lambda v: A @ v, b, iters=10)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-8)


def test_conjugate_gradient_stops_at_residual_tolerance(trpo):
    calls = []
    A = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))

    def Avp(v):
        calls.append(1)
        return A @ v

    x = trpo.conjugate_gradient(Avp, torch.tensor([1.0, 1.0], dtype=torch.float64), iters=50)
    torch.testing.assert_close(x, torch.tensor([0.5, 1 / 3], dtype=torch.float64))
    assert len(calls) == 2  # exact after n = 2 steps, then the ‖r‖ < tol test stops it


def test_kl_and_log_probability_match_the_formulas(trpo):
    agent, head = tiny_agent(trpo, n_out=3)
    obs = torch.randn(6, OBS_DIM, dtype=torch.float64)
    other, other_head = tiny_agent(trpo, seed=1, n_out=3)
    with torch.no_grad():
        kl = trpo.mean_kl(agent.distribution(obs), other.distribution(obs))
        log_std = other.actor_logstd if is_continuous(trpo) else None
        torch.testing.assert_close(kl, kl_by_hand(trpo, agent, head(obs), other_head(obs), log_std).mean())
        action = agent.distribution(obs).sample()
        by_hand = log_prob_by_hand(trpo, agent, head(obs), action)
        torch.testing.assert_close(agent.distribution(obs).log_prob(action), by_hand)


def test_gaussian_kl_is_summed_not_averaged_over_action_dimensions():
    old = trpo_continuous.Independent(trpo_continuous.Normal(torch.zeros(4, 3), torch.ones(4, 3)), 1)
    new = trpo_continuous.Independent(trpo_continuous.Normal(torch.full((4, 3), 0.5), torch.full((4, 3), 2.0)), 1)
    one_dimension = math.log(2.0) + (1.0 + 0.25) / 8.0 - 0.5
    assert trpo_continuous.mean_kl(old, new).item() == pytest.approx(3 * one_dimension)


def test_surrogate_is_the_importance_weighted_advantage_and_its_gradient_the_policy_gradient(trpo):
    agent, head = tiny_agent(trpo)
    obs, _, actions, old_logprobs = sampled_batch(trpo, agent, 16)
    advantages = torch.randn(16, dtype=torch.float64)
    other, other_head = tiny_agent(trpo, seed=1)
    with torch.no_grad():  # at another θ: mean[π_θ(a|s) / π_old(a|s) · Â], the densities written out
        ratio = torch.exp(log_prob_by_hand(trpo, other, other_head(obs), actions) - old_logprobs)
        value = trpo.surrogate_objective(other.distribution(obs), actions, old_logprobs, advantages)
        torch.testing.assert_close(value, (ratio * advantages).mean())
    # at θ_old, ∇L = mean[∇ log π_θ(a|s) · Â]: a surrogate of the wrong sign fails here
    params = agent.actor_parameters()
    gradient = trpo.flat_grad(trpo.surrogate_objective(agent.distribution(obs), actions, old_logprobs, advantages),
                              params)
    by_hand = trpo.flat_grad((log_prob_by_hand(trpo, agent, head(obs), actions) * advantages).mean(), params)
    torch.testing.assert_close(gradient, by_hand)


def test_fisher_vector_product_matches_exact_kl_hessian(trpo):
    agent, head = tiny_agent(trpo)
    obs = torch.randn(7, OBS_DIM, dtype=torch.float64)
    H = exact_kl_hessian(trpo, agent, head, obs)
    damping = 0.1
    Fvp = trpo.fisher_vector_product(agent, obs, damping)  # one graph, reused by every product
    for seed in range(3):
        v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(Fvp(v), H @ v + damping * v, rtol=1e-10, atol=1e-10)


def test_fisher_vector_product_reuses_its_graph_without_changing_a_bit(trpo):
    torch.manual_seed(0)
    agent = trpo.Agent(OBS_DIM, 3, trpo.Args())  # float32, as in training
    obs = torch.randn(500, OBS_DIM)
    vectors = torch.randn(6, flat(agent.actor_parameters()).numel())
    reused = trpo.fisher_vector_product(agent, obs, 0.1)
    products = [reused(v) for v in vectors]  # one graph, six backward passes through it
    for v, product in zip(vectors, products):
        assert torch.equal(product, trpo.fisher_vector_product(agent, obs, 0.1)(v))  # a fresh graph each time


def test_old_log_probabilities_from_stored_outputs_equal_per_step_ones(trpo):
    """The rollout stores each step's network output (mean or logits) and computes log π_old after the rollout,
    in one batched call: the same numbers as the distribution built at each step."""
    torch.manual_seed(0)
    agent = trpo.Agent(OBS_DIM, 3, trpo.Args())
    head, policy = (agent.actor_mean, agent.gaussian) if is_continuous(trpo) else (agent.actor, agent.categorical)
    outputs, actions, per_step = [], [], []
    with torch.inference_mode():
        for obs in torch.randn(200, 1, OBS_DIM):
            generator_state = torch.get_rng_state()
            action = agent.distribution(obs).sample()
            torch.set_rng_state(generator_state)
            output = head(obs)
            if is_continuous(trpo):  # the rollout's draw, a ~ N(μ, σ²) without building the distribution
                assert torch.equal(torch.normal(output, agent.actor_logstd.exp().expand_as(output)), action)
            else:
                assert torch.equal(policy(output).sample(), action)
            outputs.append(output)
            actions.append(action)
            per_step.append(agent.distribution(obs).log_prob(action))
        batched = policy(torch.cat(outputs)).log_prob(torch.cat(actions))
    assert torch.equal(batched, torch.cat(per_step))


def test_step_size_gives_target_kl_in_quadratic_model_and_in_fact(trpo):
    agent, _ = tiny_agent(trpo)
    obs = torch.randn(50, OBS_DIM, dtype=torch.float64)
    params = agent.actor_parameters()
    n = flat(params).numel()
    damping, target_kl = 1e-6, 1e-4
    Fvp = trpo.fisher_vector_product(agent, obs, damping)
    # a policy gradient lies in the span of F (it is a mean of score functions), so draw g = F u
    g = Fvp(torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    x = trpo.conjugate_gradient(Fvp, g, iters=3 * n, residual_tol=1e-12)
    xHx = (x @ Fvp(x)).item()
    beta = trpo.max_step_size(xHx, target_kl)
    assert 0.5 * beta**2 * xHx == pytest.approx(target_kl, rel=1e-12)  # quadratic model: ½ (βx)ᵀF(βx) = δ
    with torch.no_grad():
        old = agent.distribution(obs)
    vector_to_parameters(flat(params) + beta * x, params)
    with torch.no_grad():
        actual_kl = trpo.mean_kl(old, agent.distribution(obs)).item()
    assert actual_kl == pytest.approx(target_kl, rel=0.05)  # the true KL of a small step matches the model


def test_line_search_restores_parameters_when_every_step_is_rejected(trpo):
    agent, _ = tiny_agent(trpo)
    params = agent.actor_parameters()
    old = flat(params).clone()
    tried = []

    def never_better():
        tried.append(flat(params).clone())
        return -1.0, 0.0, 0.0  # the surrogate got worse at every step

    accepted, fraction, objective, kl, rejected = line_search(trpo, params, old, torch.ones_like(old), never_better,
                                                              0.0, 0.01, 0.5, 4)
    assert (accepted, fraction, objective, kl) == (0, 0.0, 0.0, 0.0)
    assert rejected["no_improvement"] == 4 and sum(rejected.values()) == 4
    assert torch.equal(flat(params), old)  # exactly, not approximately
    assert [(theta - old)[0].item() for theta in tried] == [1.0, 0.5, 0.25, 0.125]  # backtrack_coef^i


def test_line_search_accepts_first_improving_step_inside_trust_region(trpo):
    agent, _ = tiny_agent(trpo)
    params = agent.actor_parameters()
    old = flat(params).clone()
    step = torch.ones_like(old)

    def objective_and_kl():  # objective = fraction, kl = fraction²: 1 and 0.5 violate KL ≤ 0.1, 0.25 passes
        fraction_tried = (flat(params) - old)[0].item()
        return fraction_tried, fraction_tried**2, 0.0

    accepted, fraction, objective, kl, rejected = line_search(trpo, params, old, step, objective_and_kl, 0.0, 0.1,
                                                              0.5, 10)
    assert (accepted, fraction) == (3, 0.25) and rejected["kl"] == 2
    assert kl == pytest.approx(0.0625)
    torch.testing.assert_close(flat(params), old + 0.25 * step)
    # a non-finite surrogate is never accepted
    accepted, *_, rejected = line_search(trpo, params, old, step, lambda: (float("nan"), 0.0, 0.0), 0.0, 0.1, 0.5, 5)
    assert accepted == 0 and rejected["not_finite"] == 5 and torch.equal(flat(params), old)


def test_cost_aware_line_search_rejects_a_cost_rise_past_the_slack():
    trpo = trpo_continuous
    agent, _ = tiny_agent(trpo)
    params = agent.actor_parameters()
    old = flat(params).clone()
    step = torch.ones_like(old)

    def evaluate():  # L = fraction, KL = 0, and the cost surrogate L_c = 1 + fraction: it rises by the fraction
        fraction_tried = (flat(params) - old)[0].item()
        return fraction_tried, 0.0, 1.0 + fraction_tried

    # slack 0.3 (cost 0.3 under the limit): 1 and 0.5 raise L_c by more, 0.25 by less
    accepted, fraction, _, _, rejected = line_search(trpo, params, old, step, evaluate, 0.0, 0.1, 0.5, 10, 1.0, 0.3)
    assert (accepted, fraction) == (3, 0.25) and rejected == {"not_finite": 0, "no_improvement": 0, "cost": 2, "kl": 0}
    # over the limit the slack is 0: every step that raises L_c is refused, and θ_old restored
    accepted, *_ = line_search(trpo, params, old, step, evaluate, 0.0, 0.1, 0.5, 10, 1.0, 0.0)
    assert accepted == 0 and torch.equal(flat(params), old)


def test_policy_update_with_cost_search_refuses_steps_that_raise_the_cost_surrogate():
    trpo = trpo_continuous
    agent, _ = tiny_agent(trpo)
    obs, _, actions, logprobs = sampled_batch(trpo, agent, 64)
    advantages = torch.randn(64, dtype=torch.float64)
    before = flat(agent.actor_parameters()).clone()
    args = trpo.Args(target_kl=0.01, cg_iters=10)
    # the cost advantages are the reward advantages: every step that improves L raises L_c as much
    stats = trpo.trpo_policy_update(agent, obs, actions, logprobs, advantages, args, advantages, cost_slack=0.0)
    assert stats["acceptance_step"] == 0 and stats["rejected_cost"] == args.backtrack_iters
    assert torch.equal(flat(agent.actor_parameters()), before)
    stats = trpo.trpo_policy_update(agent, obs, actions, logprobs, advantages, args, advantages, cost_slack=1e9)
    assert stats["acceptance_step"] > 0 and stats["rejected_cost"] == 0  # with room to spare: plain TRPO's step


@pytest.mark.parametrize("advantage, message", [(float("nan"), "not finite"), (0.0, "policy gradient is zero")])
def test_policy_update_skips_a_zero_or_non_finite_gradient_with_a_warning_that_says_which(trpo, advantage, message):
    agent, _ = tiny_agent(trpo)
    obs, _, actions, logprobs = sampled_batch(trpo, agent, 8)
    before = flat(agent.actor_parameters()).clone()
    with pytest.warns(UserWarning, match=message):  # (constant advantages: nothing to learn)
        stats = trpo.trpo_policy_update(agent, obs, actions, logprobs, torch.full((8,), advantage, dtype=torch.float64),
                                        trpo.Args())
    assert stats["acceptance_step"] == 0
    assert torch.equal(flat(agent.actor_parameters()), before)


def test_policy_update_improves_the_surrogate_written_out_within_the_trust_region(trpo):
    agent, head = tiny_agent(trpo)
    obs, dist, actions, logprobs = sampled_batch(trpo, agent, 64)
    rewarded = actions[:, 0] - actions[:, 1] if is_continuous(trpo) else (actions == 0).double()
    advantages = trpo.standardize(rewarded)
    args = trpo.Args(target_kl=0.01)
    stats = trpo.trpo_policy_update(agent, obs, actions, logprobs, advantages, args)
    assert stats["acceptance_step"] >= 1
    assert 0 < stats["kl"] <= args.target_kl
    with torch.no_grad():
        assert trpo.mean_kl(dist, agent.distribution(obs)).item() == pytest.approx(stats["kl"])
        # the surrogate by hand (it is 0 at θ_old, where every ratio is 1 and the advantages have mean 0)
        ratio = torch.exp(log_prob_by_hand(trpo, agent, head(obs), actions) - logprobs)
        assert (ratio * advantages).mean().item() == pytest.approx(stats["actual_improvement"]) and \
            stats["actual_improvement"] > 0


def test_critic_update_steps_on_the_mse_with_its_l2_term_and_a_clipped_gradient(trpo):
    """One full-batch step with SGD in place of Adam (a step proportional to the gradient), against the loss and the
    clip written out: a missing L2 term, a sum for the mean or a missing clip would each move the weights elsewhere."""
    args = trpo.Args(update_epochs=1, critic_minibatch_size=64, critic_l2_coef=0.05, max_grad_norm=0.5)
    torch.manual_seed(0)
    critic = trpo.mlp(OBS_DIM, 1, 1.0, args)
    reference = trpo.mlp(OBS_DIM, 1, 1.0, args)
    reference.load_state_dict(critic.state_dict())
    obs, returns = torch.randn(64, OBS_DIM), 10 * torch.randn(64)  # large errors: the gradient's norm is clipped
    params = list(reference.parameters())
    mse = (reference(obs).squeeze(-1) - returns).pow(2).mean()
    gradient = torch.autograd.grad(mse + 0.05 * sum(p.pow(2).sum() for p in params), params)
    norm = torch.sqrt(sum(g.pow(2).sum() for g in gradient))
    assert norm > 0.5
    with torch.no_grad():
        for p, g in zip(params, gradient):
            p -= 0.1 * g * 0.5 / norm  # θ ← θ − lr · g · max_grad_norm / ‖g‖
    optimizer = torch.optim.SGD(critic.parameters(), lr=0.1)
    (loss,) = trpo.critic_update([critic], [optimizer], [returns], obs, args)
    assert loss == pytest.approx(mse.item(), rel=1e-6)  # the mean squared error, without the L2 term
    for ours, expected in zip(critic.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


def test_gae_by_hand_with_termination_and_truncation_bootstrap(trpo):
    gamma, lam = 0.9, 0.8
    # One env, 4 steps. Episode A: steps 0-1, truncated by the time limit after step 1 with V(s_final) = 5.
    # Episode B: steps 2-3, terminated after step 3. The next observation begins a new episode.
    rewards = np.array([1.0, 2.0, 3.0, 4.0])
    values = np.array([[0.5], [1.0], [1.5], [2.0]])
    truncated = np.array([False, True, False, False])
    final_values = np.array([0.0, 5.0, 0.0, 0.0])
    rewards = trpo.add_truncation_bootstrap(rewards, truncated, final_values, gamma)[:, None]
    dones = np.array([[0.0], [0.0], [1.0], [0.0]])  # observation 2 begins episode B
    advantages, returns = trpo.compute_gae(rewards, values, dones, np.array([7.0]), np.array([1.0]), gamma, lam)
    d1 = 2.0 + gamma * 5.0 - 1.0  # truncated: bootstraps from the final observation's value
    d0 = 1.0 + gamma * 1.0 - 0.5
    d3 = 4.0 - 2.0  # terminated: no bootstrap (the 7.0 belongs to the next episode)
    d2 = 3.0 + gamma * 2.0 - 1.5
    expected = np.array([[d0 + gamma * lam * d1], [d1], [d2 + gamma * lam * d3], [d3]])
    np.testing.assert_allclose(advantages, expected, rtol=1e-12)
    np.testing.assert_allclose(returns, expected + values, rtol=1e-12)


def test_gae_bootstraps_from_next_value_when_rollout_ends_mid_episode(trpo):
    advantages, _ = trpo.compute_gae(np.array([[1.0]]), np.array([[0.0]]), np.array([[0.0]]), np.array([10.0]),
                                     np.array([0.0]), 0.5, 0.9)
    np.testing.assert_allclose(advantages, [[6.0]])  # 1 + 0.5·10 − 0


def test_running_statistics_merge_batches_exactly_and_normalization_clips_at_5(trpo):
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    stats = trpo.RunningMeanStd((4,))
    for batch in np.array_split(data, 37):
        stats.update(batch)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4)
    normalized = trpo.normalize_obs(data, stats)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, (data - data.mean(0)) / data.std(0), rtol=1e-4, atol=1e-4)
    far = np.array([[3.0 + 40.0, 3.0 - 30.0, 3.0 + 6.0, 3.0]])  # 20, −15, 3 and 0 standard deviations away
    np.testing.assert_allclose(trpo.normalize_obs(far, stats), [[5.0, -5.0, 3.0, 0.0]], atol=0.05)
    assert trpo.normalize_obs(far, stats)[0, :2].tolist() == [5.0, -5.0]  # clipped exactly
    assert np.array_equal(trpo.normalize_obs(far, None), far.astype(np.float32))  # without normalization


def test_reward_scaler_divides_by_the_std_of_the_discounted_return_and_resets_it(trpo):
    scaler = trpo.RewardScaler(num_envs=2, gamma=0.5)
    rewards, returns = np.array([10.0, -10.0]), []
    for _ in range(30):
        scaled = scaler(rewards, np.array([False, False]))
        returns.append(scaler.discounted_return.copy())
    std = np.std(returns)  # of every G_t seen, both envs: G_t = 0.5 G_{t−1} ± 10
    assert std > 10 and scaled == pytest.approx(rewards / std, rel=1e-4)  # r / std(G), neither r / Var(G) nor r − μ
    scaler(rewards, np.array([True, False]))
    assert scaler.discounted_return[0] == 0.0 and scaler.discounted_return[1] != 0.0


def test_network_options_build_the_networks_they_name(trpo):
    args = trpo.Args(hidden_sizes=(32, 16, 8), activation="relu", weight_init="pytorch")
    agent = trpo.Agent(4, 2, args)
    networks = [agent.critic, agent.actor_mean if is_continuous(trpo) else agent.actor]
    for network in networks:
        linear = [m for m in network if isinstance(m, torch.nn.Linear)]
        assert [m.out_features for m in linear[:-1]] == [32, 16, 8]
        assert all(isinstance(m, torch.nn.ReLU) for m in network if not isinstance(m, torch.nn.Linear))
    torch.manual_seed(0)
    orthogonal = trpo.Agent(4, 2, trpo.Args(hidden_sizes=(64,)))
    head = orthogonal.actor_mean if is_continuous(trpo) else orthogonal.actor
    # orthogonal: the hidden layer's rows are orthogonal with norm √2; the policy's last layer is scaled by 0.01
    weight = head[0].weight.detach()
    assert torch.allclose(weight.T @ weight, 2 * torch.eye(4), atol=1e-5)
    assert head[-1].weight.abs().max() < 0.02
    assert networks[1][-1].weight.abs().max() > 0.05  # nn.Linear's U(±1/√8) on the last layer


def test_speed_spellings_compute_the_same_mathematics(trpo):
    # the rollout's values in one batched call after it, against one call per step
    torch.manual_seed(0)
    agent = trpo.Agent(OBS_DIM, 2, trpo.Args())
    rollout = torch.randn(200, 4, OBS_DIM)  # (num_steps, num_envs, obs_dim)
    with torch.inference_mode():
        per_step = torch.stack([agent.critic(rollout[t]).squeeze(-1) for t in range(200)])
        batched = agent.critic(rollout.reshape(-1, OBS_DIM)).squeeze(-1).reshape(200, 4)
    torch.testing.assert_close(batched, per_step, rtol=0, atol=1e-6)
    # the running statistics' np.add.reduce spelling: bit for bit np.mean and np.var
    batches = [np.random.default_rng(seed).normal(3.0, 2.0, (n, 5)).astype(dtype)
               for seed, n, dtype in [(0, 1, np.float32), (1, 16, np.float64), (2, 7, np.float32)]]
    ours, reference = trpo.RunningMeanStd((5,)), trpo.RunningMeanStd((5,))
    for batch in batches:
        ours.update(batch)
        reference.update_from_moments(batch.mean(axis=0), batch.var(axis=0), batch.shape[0])
        assert np.array_equal(ours.mean, reference.mean) and np.array_equal(ours.var, reference.var)
    # fused Adam: the same steps as the for-loop Adam, to float tolerance
    networks = [trpo.mlp(OBS_DIM, 1, 1.0, trpo.Args(hidden_sizes=(16,))) for _ in range(2)]
    networks[1].load_state_dict(networks[0].state_dict())
    optimizers = [torch.optim.Adam(networks[0].parameters(), lr=1e-3),
                  torch.optim.Adam(networks[1].parameters(), lr=1e-3, fused=True)]
    obs, targets = torch.randn(64, OBS_DIM), torch.randn(64)
    for _ in range(50):
        for network, optimizer in zip(networks, optimizers):
            optimizer.zero_grad()
            (network(obs).squeeze(-1) - targets).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(networks[0].parameters(), networks[1].parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Safe RL (trpo_continuous.py): the multiplier's rules, the penalized advantage, the per-step costs.
# ---------------------------------------------------------------------------------------------------
def test_gradient_multiplier_rises_above_the_limit_and_falls_to_zero_below():
    multiplier, history = 0.0, []
    for episode_cost in [40.0, 40.0, 30.0, 10.0, 10.0, 10.0, 10.0]:  # limit 25: three violations, then safe
        multiplier = trpo_continuous.gradient_lagrange_step(multiplier, episode_cost, cost_limit=25.0, lr=0.1)
        history.append(multiplier)
    assert history[:3] == pytest.approx([1.5, 3.0, 3.5])  # λ + η (J_c − d)
    assert history[3:] == pytest.approx([2.0, 0.5, 0.0, 0.0])  # projected on λ ≥ 0: stays at 0, never below


def test_adam_multiplier_update_is_adam_on_minus_lambda_times_the_violation():
    costs = [40.0, 35.0, 20.0, 10.0, 10.0, 10.0]  # limit 25: over, then under
    multiplier = torch.nn.Parameter(torch.tensor(0.001, dtype=torch.float64))
    optimizer = torch.optim.Adam([multiplier], lr=0.035)
    ours, moments = 0.001, [0.0, 0.0, 0]
    for cost in costs:
        optimizer.zero_grad()
        (-multiplier * (cost - 25.0)).backward()
        optimizer.step()
        with torch.no_grad():
            multiplier.clamp_(min=0.0)  # OmniSafe's projection on λ ≥ 0
        ours, moments = trpo_continuous.adam_lagrange_step(ours, moments, cost, 25.0, 0.035)
        assert ours == pytest.approx(multiplier.item(), abs=1e-12)
    assert moments[2] == len(costs)


class PIDByHand:
    """The PID Lagrangian of Stooke, Achiam and Abbeel (2020) with OmniSafe 0.5.0's moving averages and delay (its
    TRPOPID caps nothing), written out from its equations with a deque (not the script's spelling)."""

    def __init__(self, args):
        self.args, self.integral, self.p, self.c = args, args.lagrange_multiplier_init, 0.0, 0.0
        self.past = collections.deque([0.0], maxlen=args.pid_d_delay)  # the moving averages of the cost, oldest first
        self.unprojected = []  # I + K_i e before each projection at 0

    def update(self, cost):
        a = self.args
        error = cost - a.cost_limit
        self.unprojected.append(self.integral + a.pid_ki * error)
        self.integral = max(0.0, self.unprojected[-1])
        self.p = a.pid_p_ema_alpha * self.p + (1 - a.pid_p_ema_alpha) * error
        self.c = a.pid_d_ema_alpha * self.c + (1 - a.pid_d_ema_alpha) * cost
        derivative = max(0.0, self.c - self.past[0])
        self.past.append(self.c)
        return max(0.0, a.pid_kp * self.p + self.integral + a.pid_kd * derivative)


def start(args):
    return {"multiplier": args.lagrange_multiplier_init, "adam_moments": [0.0, 0.0, 0], "recent_costs": [],
            "mean_episode_cost": None, "pid": dict(integral=args.lagrange_multiplier_init, p=0.0, c=0.0, history=[0.0])}


def test_pid_multiplier_rule_follows_omnisafes_equations_and_reduces_to_the_gradient_rule():
    trpo = trpo_continuous
    args = trpo.Args(cost_limit=25.0, lagrange_update="pid", lagrange_multiplier_init=0.001)
    # the first step by hand, OmniSafe's defaults: e = 15, I = 0.001 + 0.15, p = 0.05·15, c = 0.05·40, rise c − 0
    state = trpo.update_lagrange(start(args), [40.0], args)
    assert state["multiplier"] == pytest.approx(0.1 * 0.75 + 0.151 + 0.01 * 2.0)
    # K_p = K_d = 0: the gradient rule with η = K_i, step for step
    costs = [40.0, 90.0, 60.0, 20.0, 5.0, 0.0, 30.0, 120.0, 150.0, 80.0, 10.0] + [0.0] * 8 + [26.0, 70.0, 30.0]
    gradient_args = trpo.Args(cost_limit=25.0, lagrange_lr=0.01, lagrange_multiplier_init=0.5)
    pid_args = trpo.Args(cost_limit=25.0, lagrange_update="pid", pid_kp=0.0, pid_ki=0.01, pid_kd=0.0,
                         lagrange_multiplier_init=0.5)
    gradient, pid = start(gradient_args), start(pid_args)
    for cost in costs:
        gradient = trpo.update_lagrange(gradient, [cost], gradient_args)
        pid = trpo.update_lagrange(pid, [cost], pid_args)
        assert pid["multiplier"] == pytest.approx(gradient["multiplier"], abs=1e-12)


def test_pid_multiplier_rule_step_for_step_where_every_term_shows():
    """Distinct gains, α_p ≠ α_d and a delay of 3, through costs that rise and fall unevenly: λ stays above 0 and
    every term moves it, so a delay one longer or shorter, swapped moving averages, a derivative of the raw cost, an
    integral let below 0, or any cap under the 240 it reaches changes a value."""
    trpo = trpo_continuous
    args = trpo.Args(cost_limit=25.0, lagrange_update="pid", lagrange_multiplier_init=0.5, pid_kp=0.5, pid_ki=0.05,
                     pid_kd=0.8, pid_d_delay=3, pid_p_ema_alpha=0.8, pid_d_ema_alpha=0.6)
    assert args.pid_max is None  # OmniSafe's TRPOPID caps nothing
    # a fall that takes the integral to its floor (λ held up by the P and D terms), uneven rises, then a long climb
    costs = [40.0, 5.0, 10.0, 40.0, 100.0, 30.0, 110.0, 60.0, 120.0, 155.0, 35.0, 15.0, 145.0, 105.0, 35.0, 90.0]
    costs += [1000.0 + 200.0 * k for k in range(20)]
    by_hand, state, multipliers = PIDByHand(args), start(args), []
    for cost in costs:
        state = trpo.update_lagrange(state, [cost], args)
        multipliers.append(state["multiplier"])
        assert state["multiplier"] == pytest.approx(by_hand.update(cost), rel=1e-12, abs=1e-12)
    assert min(multipliers) > 0.0  # the floor never binds
    assert min(by_hand.unprojected) < 0.0  # the integral's projection acted
    assert max(multipliers) > 200.0  # past the old cap of 100: no cap
    capped = trpo.Args(**{**vars(args), "pid_max": 4.0})  # --pid-max, for those who want one
    state = start(capped)
    for cost, uncapped in zip(costs, multipliers):
        state = trpo.update_lagrange(state, [cost], capped)
        assert state["multiplier"] == min(uncapped, 4.0)


def test_the_cost_window_averages_the_last_episodes_across_rollouts():
    args = trpo_continuous.Args(cost_limit=25.0, lagrange_lr=0.1, cost_window=3)
    state = start(args)
    for episode_costs, mean in [([40.0], 40.0), ([10.0, 70.0], 40.0), ([100.0], 60.0), ([0.0, 0.0, 3.0], 1.0)]:
        state = trpo_continuous.update_lagrange(state, episode_costs, args)
        assert state["mean_episode_cost"] == pytest.approx(mean) and len(state["recent_costs"]) <= 3
    # cost_window 0: the rollout's own episodes only
    args = trpo_continuous.Args(cost_limit=25.0, lagrange_lr=0.1)
    state = trpo_continuous.update_lagrange(start(args), [100.0], args)
    assert trpo_continuous.update_lagrange(state, [1.0, 3.0], args)["mean_episode_cost"] == 2.0


def test_a_zero_learning_rate_holds_the_multiplier_as_a_fixed_penalty():
    for update in ["gradient", "adam"]:
        args = trpo_continuous.Args(cost_limit=25.0, lagrange_lr=0.0, lagrange_update=update,
                                    lagrange_multiplier_init=1.5)
        state = start(args)
        for cost in [80.0, 0.0, 40.0]:  # over, under and over the limit: λ stays where it started
            state = trpo_continuous.update_lagrange(state, [cost], args)
            assert state["multiplier"] == 1.5, update


def test_penalized_advantage_interpolates_from_reward_to_minus_cost():
    reward_advantages, cost_advantages = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 1.0, -1.0])
    penalized = trpo_continuous.penalized_advantages
    assert torch.equal(penalized(reward_advantages, cost_advantages, 0.0), reward_advantages)
    assert torch.allclose(penalized(reward_advantages, cost_advantages, 1.0), (reward_advantages - cost_advantages) / 2)
    assert torch.allclose(penalized(reward_advantages, cost_advantages, 1e9), -cost_advantages)


def test_advantages_are_standardized_or_cost_advantages_only_centred_as_omnisafe_does():
    x = torch.tensor([1.0, 3.0, 4.0, 8.0], dtype=torch.float64)
    standardized = trpo_continuous.standardize(x)
    assert standardized.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert standardized.std().item() == pytest.approx(1.0, rel=1e-6)  # unbiased std, as torch.std
    assert torch.allclose(trpo_continuous.standardize(x, scale=False), x - 4.0)  # the costs' scale kept


def test_step_costs_read_the_final_info_of_envs_that_just_reset():
    # Gymnasium 0.28 vector infos: env 0 mid-episode (cost in infos), env 1 just reset (cost in final_info)
    infos = {"cost": np.array([2.0, 0.0]), "_cost": np.array([True, False]),
             "final_info": np.array([None, {"cost": 5.0}], dtype=object), "_final_info": np.array([False, True])}
    assert trpo_continuous.step_costs(infos, 2).tolist() == [2.0, 5.0]
    assert trpo_continuous.step_costs({}, 2).tolist() == [0.0, 0.0]  # an env without a cost


def test_linear_schedule_runs_from_start_to_end():
    assert [trpo_continuous.linear_schedule(0.5, 0.1, p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.5, 0.3, 0.1])
