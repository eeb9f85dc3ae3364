"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): observation statistics that move
without moving the policy. The script updates the running mean μ and std σ of the observations at every step, so the
normalized input (s − μ)/σ of the policy and the critics changes outside the trust region, by 0.0004 to 0.001 of a
std per update at the top of InvertedDoublePendulum: 0.3 to 0.7 of a std over the late part of a run. Here the
statistics stay fixed during a rollout and move once, after the update, and the first layer of every network
absorbs the move so that it computes the same function of the raw observation:

    W ← W·diag(σ′/σ),   b ← b + W·((μ′ − μ)/σ)     ((s − μ′)/σ′ in, the same outputs as (s − μ)/σ before)

(exact but for the clip at ±5). ABSORB_BELOW=τ absorbs only the input dimensions whose move is small,
|μ′ − μ|/σ ≤ τ and |log(σ′/σ)| ≤ τ (the drift of settled statistics), and lets larger moves through as the script
does (early, when the statistics are still learning). RESCALE_CRITIC=1 treats the reward scale the same way (PopArt's
"preserve outputs", van Hasselt et al. 2016): after the first rollout the scale s = √Var[G] stays fixed during a rollout
and moves once, after the update, and the critic's output layer is multiplied by s/s′, so that its value in the
reward's own units (V·s) is unchanged. One process only. Run it with the script's flags, e.g. with the
evidence step:

    python benchmark/probe_absorbed_statistics.py --env-id InvertedDoublePendulum-v4 --seed 0 --evidence-decay 0.99 \\
        --exp-name absorbed --save-model
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

update_statistics, state = trpo.RunningMeanStd.update, dict(agent=None, statistics=None, pending=None)
state.update(returns=None, returns_pending=trpo.RunningMeanStd((), count=0.0), updates=0)
absorb_below = float(os.environ.get("ABSORB_BELOW", "inf"))
rescale_critic = os.environ.get("RESCALE_CRITIC", "0") == "1"


def deferred_update(self, batch):
    if self.mean.shape == ():  # the reward scaler's statistics: as before, or (RESCALE_CRITIC) after the first update
        state["returns"] = self
        if not rescale_critic or state["updates"] == 0:
            return update_statistics(self, batch)
        return update_statistics(state["returns_pending"], batch)
    if state["statistics"] is None:  # the first observations, before any rollout: the statistics start from them
        state["statistics"], state["pending"] = self, trpo.RunningMeanStd(self.mean.shape, count=0.0)
        return update_statistics(self, batch)
    if self is state["statistics"]:
        update_statistics(state["pending"], batch)


def absorb(layer, mean, std, new_mean, new_std):
    scale, shift = new_std / std, (new_mean - mean) / std
    small = (np.abs(shift) <= absorb_below) & (np.abs(np.log(scale)) <= absorb_below)
    scale, shift = np.where(small, scale, 1.0), np.where(small, shift, 0.0)  # the rest moves the input, as before
    with torch.no_grad():
        weight = layer.weight.clone()
        layer.weight.mul_(torch.as_tensor(scale, dtype=weight.dtype))
        layer.bias.add_(weight @ torch.as_tensor(shift, dtype=weight.dtype))


original_critic_update = trpo.critic_update


def critic_update_then_statistics(*args, **kwargs):
    losses = original_critic_update(*args, **kwargs)
    statistics, pending, agent = state["statistics"], state["pending"], state["agent"]
    if statistics is not None and pending.count > 0:
        mean, std = statistics.mean.copy(), np.sqrt(statistics.var + 1e-8)
        statistics.update_from_moments(pending.mean, pending.var, pending.count)
        new_mean, new_std = statistics.mean, np.sqrt(statistics.var + 1e-8)
        for network in [agent.actor_mean, agent.critic] + ([agent.cost_critic] if agent.cost_critic else []):
            absorb(network[0], mean, std, new_mean, new_std)
        state["pending"] = trpo.RunningMeanStd(statistics.mean.shape, count=0.0)
    returns, pending_returns = state["returns"], state["returns_pending"]
    if rescale_critic and returns is not None and pending_returns.count > 0:
        scale = np.sqrt(returns.var + 1e-8)
        returns.update_from_moments(pending_returns.mean, pending_returns.var, pending_returns.count)
        ratio = float(scale / np.sqrt(returns.var + 1e-8))
        with torch.no_grad():
            agent.critic[-1].weight.mul_(ratio)
            agent.critic[-1].bias.mul_(ratio)
        state["returns_pending"] = trpo.RunningMeanStd((), count=0.0)
    state["updates"] += 1
    return losses


class RecordedAgent(trpo.Agent):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        state["agent"] = self


trpo.RunningMeanStd.update, trpo.critic_update, trpo.Agent = deferred_update, critic_update_then_statistics, RecordedAgent
result = trpo.train(trpo.parse_args(sys.argv[1:]))
print(f"run {result['run_name']} done")
