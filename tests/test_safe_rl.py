"""trpo_continuous.py's safe-RL options on short runs: the cost critic, TRPO-Lagrangian (--cost-limit) with each
multiplier rule, the cost-aware line search, the reward penalty; and both scripts' schedules.

The envs with a cost are conftest's CostPendulum-v1 and ConstantCostPendulum-v1 (Safety-Gymnasium is too slow for
many short runs); test_runs.py's smoke run checks TRPO-Lagrangian on SafetyPointGoal1-v0 itself."""
import math

import numpy as np
import pytest
import torch
from conftest import read_scalars

import trpo_continuous as trpo
import trpo_discrete


def tiny(module=trpo, **overrides):
    settings = dict(env_id="CostPendulum-v1" if module is trpo else "CartPole-v1", total_timesteps=1200, num_steps=400,
                    critic_minibatch_size=100, num_envs=1, update_epochs=2, save_model=True, eval_episodes=1)
    return module.Args(**{**settings, **overrides})


def parameters(result):
    return torch.load(result["model_path"], weights_only=True)["agent"]


def test_cost_options_leave_plain_trpo_unchanged_until_the_multiplier_moves(in_tmp):
    plain = parameters(trpo.train(tiny(exp_name="plain")))
    with_cost_critic = trpo.train(tiny(exp_name="critic", use_cost_critic=True, cost_gamma=0.9))
    unreachable_limit = trpo.train(tiny(exp_name="limit", cost_limit=1e9))  # λ stays 0
    for result in [with_cost_critic, unreachable_limit]:
        saved = parameters(result)
        assert any(key.startswith("cost_critic.") for key in saved)
        assert all(torch.equal(plain[key], saved[key]) for key in plain)  # the policy and the reward critic
        assert result["lagrange_multiplier"] == 0.0


def test_multiplier_rises_while_cost_exceeds_the_limit_and_penalizes_the_policy(in_tmp):
    plain = parameters(trpo.train(tiny(exp_name="plain")))
    result = trpo.train(tiny(exp_name="lag", cost_limit=0.0, lagrange_lr=0.01))
    scalars = read_scalars(in_tmp / "runs" / result["run_name"])
    multipliers, costs = scalars["charts/lagrange_multiplier"], scalars["charts/episodic_cost"]
    assert len(multipliers) == 3 and np.mean(costs) > 0  # J_c > d = 0 in every rollout: λ rises each time
    assert 0 < multipliers[0] < multipliers[1] < multipliers[2] == pytest.approx(result["lagrange_multiplier"])
    for tag in ["losses/cost_value_loss", "losses/cost_explained_variance"]:
        assert len(scalars[tag]) == 3 and all(math.isfinite(v) for v in scalars[tag]), tag
    saved = parameters(result)
    assert not all(torch.equal(plain[key], saved[key]) for key in plain)


def test_multiplier_falls_back_to_zero_once_the_cost_is_under_the_limit(in_tmp):
    result = trpo.train(tiny(exp_name="safe", cost_limit=1e4, lagrange_multiplier_init=2.0, lagrange_lr=1e-3))
    multipliers = read_scalars(in_tmp / "runs" / result["run_name"])["charts/lagrange_multiplier"]
    assert multipliers[0] < 2.0 and multipliers[-1] == 0.0


@pytest.mark.parametrize("update", ["adam", "pid"])
def test_each_multiplier_rule_and_the_cost_aware_search_train_and_resume(in_tmp, monkeypatch, update):
    # limit 0: every rollout is over it, so λ rises with every rule and the search's slack is 0
    settings = dict(exp_name=update, cost_limit=0.0, lagrange_update=update, cost_line_search=True, checkpoint_every=2,
                    lagrange_multiplier_init=0.001, save_model=False)
    saved_states, original = [], trpo.save_checkpoint

    def keep_a_copy(state, path):
        original(state, path)
        saved_states.append(torch.load(path, weights_only=True))

    monkeypatch.setattr(trpo, "save_checkpoint", keep_a_copy)
    result = trpo.train(tiny(**settings))
    run_dir = in_tmp / "runs" / result["run_name"]
    scalars = read_scalars(run_dir)
    assert min(scalars["charts/lagrange_multiplier"]) > 0.001  # (PID's λ may fall as the cost falls, still over d)
    reasons = ["not_finite", "no_improvement", "cost", "kl"]
    rejected = np.sum([scalars[f"trpo/rejected_{reason}"] for reason in reasons], 0)
    for count, accepted in zip(rejected, scalars["trpo/acceptance_step"]):  # every step tried before the accepted one
        assert count == (accepted - 1 if accepted else trpo.Args().backtrack_iters)
    # the checkpoint after 2 of 3 iterations holds λ's state; resumed from it, λ moves on from there
    middle = saved_states[0]
    assert middle["iteration"] == 2 and middle["lagrange"]["mean_episode_cost"] > 0 and middle["lagrange"]["pid"]
    torch.save(middle, run_dir / "checkpoint.pt")
    resumed = trpo.train(trpo.Args(resume=str(run_dir / "checkpoint.pt")))
    costs = read_scalars(run_dir)["charts/episodic_cost"]  # 2 episodes a rollout; the stopped run's third is purged
    expected = trpo.update_lagrange(middle["lagrange"], costs[-2:], trpo.Args(**middle["args"]))
    assert len(costs) == 6 and resumed["lagrange_multiplier"] == pytest.approx(expected["multiplier"], rel=1e-5)


def test_penalty_coef_trains_on_the_reward_minus_the_penalized_cost(in_tmp, monkeypatch):
    rewards = []
    original = trpo.compute_gae
    monkeypatch.setattr(trpo, "compute_gae", lambda r, *args: rewards.append(r.copy()) or original(r, *args))
    settings = dict(env_id="ConstantCostPendulum-v1", normalize_reward=False, total_timesteps=400, save_model=False)
    trpo.train(tiny(exp_name="plain", **settings))
    trpo.train(tiny(exp_name="penalized", penalty_coef=2.0, **settings))
    np.testing.assert_allclose(rewards[0] - rewards[1], 2.0, rtol=1e-5)  # r − κ·c, with c = 1 at every step


@pytest.mark.parametrize("module", [trpo, trpo_discrete], ids=["continuous", "discrete"])
def test_anneal_lr_decays_the_critic_learning_rate_linearly(in_tmp, module):
    result = module.train(tiny(module, exp_name="anneal", anneal_lr=True, critic_lr=3e-3))
    rates = read_scalars(in_tmp / "runs" / result["run_name"])["charts/learning_rate"]
    assert rates == pytest.approx([3e-3, 2e-3, 1e-3])  # critic_lr · (1 − k/K), k = 0, 1, 2 of K = 3


def test_std_schedule_sets_the_exploration_std_before_each_rollout(in_tmp, monkeypatch):
    seen = []
    original = trpo.trpo_policy_update

    def spy(agent, *args, **kwargs):
        seen.append(agent.actor_logstd.exp().tolist())
        return original(agent, *args, **kwargs)

    monkeypatch.setattr(trpo, "trpo_policy_update", spy)
    trpo.train(tiny(exp_name="std", std_schedule=(0.5, 0.1), save_model=False))
    assert np.allclose(seen, [[0.5], [0.3], [0.1]])  # Pendulum has one action dimension


def test_network_options_train_save_and_evaluate(in_tmp):
    result = trpo.train(tiny(exp_name="net", hidden_sizes=(16, 8), activation="relu", weight_init="pytorch",
                             cost_limit=10.0))
    checkpoint = torch.load(result["model_path"], weights_only=True)
    assert (checkpoint["args"]["hidden_sizes"], checkpoint["args"]["activation"]) == ((16, 8), "relu")
    assert "cost_critic.0.weight" in checkpoint["agent"] and math.isfinite(result["eval_return"])
