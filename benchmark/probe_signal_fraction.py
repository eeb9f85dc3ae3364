"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): trpo_continuous.py, in one process,
with its TRPO step scaled by the batch's signal fraction, measured by cross-fitting. Measured and set aside: it is no
feature of the script.

    SCALE=rho  python benchmark/probe_signal_fraction.py --env-id InvertedDoublePendulum-v4 --seed 0 --exp-name shrink
    SCALE=skip python benchmark/probe_signal_fraction.py --env-id HalfCheetah-v4 --seed 0 --exp-name skip

Before each update the batch is split in two halves, whole trajectories of half the envs each, and
ρ = g₁ᵀF⁻¹g₂ / gᵀF⁻¹g estimates the share of the natural gradient's squared norm that is signal (the halves' noises
are independent, so their cross term keeps the signal alone). SCALE=rho takes the step ρβx (clipped to [0, 1]: the
optimum of the quadratic model for a noisy gradient) where TRPO takes βx; SCALE=skip takes βx when ρ > 0 and no step
otherwise. The rest is trpo_policy_update's, copied below with the two lines that differ marked. ρ of each update goes to
<run folder>/signal_fraction.csv. Any flag of the script can follow."""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402
from trpo_continuous import (backtracking_line_search, conjugate_gradient, fisher_vector_product,  # noqa: E402
                             flat_grad, flat_params, max_step_size, mean_kl, surrogate_objective)

SCALE, fractions = os.environ.get("SCALE", "rho"), []


def trpo_policy_update(agent, obs, actions, old_logprobs, advantages, args, cost_advantages=None, cost_slack=math.inf):
    params = agent.actor_parameters()
    cost_advantages = torch.zeros_like(advantages) if cost_advantages is None else cost_advantages
    with torch.no_grad():
        old_dist = agent.distribution(obs)
    index = torch.arange(len(obs))
    first = index % args.num_envs < args.num_envs // 2 if args.num_envs > 1 else index < len(obs) // 2
    objective = surrogate_objective(agent.distribution(obs), actions, old_logprobs, advantages)
    g = flat_grad(objective, params)
    g_first = flat_grad(surrogate_objective(agent.distribution(obs[first]), actions[first], old_logprobs[first],
                                            advantages[first]), params)
    share = first.float().mean().item()
    g_second = (g - share * g_first) / (1 - share)
    stats = dict(grad_norm=g.norm().item(), xHx=0.0, step_norm=0.0, acceptance_step=0, expected_improvement=0.0,
                 actual_improvement=0.0, kl=0.0)
    if not torch.isfinite(g).all() or not g.any():
        return stats
    Fvp = fisher_vector_product(agent, obs[:: args.fvp_sample_freq], args.cg_damping)
    x = conjugate_gradient(Fvp, g, args.cg_iters)
    xHx = stats["xHx"] = (x @ Fvp(x)).item()
    if not (math.isfinite(xHx) and xHx > 0):
        return stats
    rho = stats["signal_fraction"] = ((g_second @ conjugate_gradient(Fvp, g_first, args.cg_iters)) / (g @ x)).item()
    fractions.append(rho)
    scale = (1.0 if rho > 0 else 0.0) if SCALE == "skip" else min(max(rho, 0.0), 1.0)  # (differs from TRPO)
    if scale == 0.0:
        return stats
    full_step = scale * max_step_size(xHx, args.target_kl) * x  # (differs from TRPO: the scale)

    def evaluate():
        with torch.no_grad():
            dist = agent.distribution(obs)
            values = [surrogate_objective(dist, actions, old_logprobs, advantages), mean_kl(old_dist, dist),
                      surrogate_objective(dist, actions, old_logprobs, cost_advantages)]
            return torch.stack(values).tolist()

    acceptance_step, fraction, new_objective, kl, rejected = backtracking_line_search(
        params, flat_params(params), full_step, evaluate, objective.item(), cost_advantages.mean().item(), cost_slack,
        args)
    stats.update(acceptance_step=acceptance_step, kl=kl, step_norm=(fraction * full_step).norm().item(),
                 expected_improvement=fraction * (g @ full_step).item(), actual_improvement=new_objective - objective.item())
    return stats | {f"rejected_{reason}": count for reason, count in rejected.items()}


trpo.trpo_policy_update = trpo_policy_update
result = trpo.train(trpo.parse_args(sys.argv[1:]))
with open(os.path.join("runs", result["run_name"], "signal_fraction.csv"), "w") as f:
    f.write("signal_fraction\n" + "".join(f"{rho}\n" for rho in fractions))
