"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): do successive TRPO steps agree?
Runs trpo_continuous.py unchanged and records, per update k, the natural-metric cosine between the new policy
gradient g_k and the previous accepted step Δθ_{k−1}:

    cos_k = g_kᵀΔθ_{k−1} / √(g_kᵀF⁻¹g_k · Δθ_{k−1}ᵀFΔθ_{k−1})     (F, F⁻¹g by conjugate gradient, at θ_k)

On a slope the gradient persists across batches (cos > 0 on average, however noisy each g is); around an optimum a
step that overshot is pulled back (cos < 0) and pure noise gives cos ≈ 0. Written to <run folder>/agreement.csv:

    python benchmark/probe_step_agreement.py --env-id InvertedDoublePendulum-v4 --seed 0 --total-timesteps 300000

Any flag of the script can follow."""
import csv
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

update, rows, previous_step = trpo.trpo_policy_update, [], [None]


def recording_update(agent, obs, actions, old_logprobs, advantages, args, *rest, **kwargs):
    params = agent.actor_parameters()
    before = trpo.flat_params(params).clone()
    g = trpo.flat_grad(trpo.surrogate_objective(agent.distribution(obs), actions, old_logprobs, advantages), params)
    Fvp = trpo.fisher_vector_product(agent, obs, args.cg_damping)
    natural_norm2 = (g @ trpo.conjugate_gradient(Fvp, g, args.cg_iters)).item()
    row = dict(cos=float("nan"))
    if previous_step[0] is not None:
        step = previous_step[0]
        row["cos"] = (g @ step).item() / max((natural_norm2 * (step @ Fvp(step)).item()) ** 0.5, 1e-12)
    stats = update(agent, obs, actions, old_logprobs, advantages, args, *rest, **kwargs)
    previous_step[0] = trpo.flat_params(params) - before
    rows.append(row | dict(step_kl=stats["kl"], std=agent.actor_logstd.exp().mean().item()))
    return stats


trpo.trpo_policy_update = recording_update
result = trpo.train(trpo.parse_args(sys.argv[1:]))
path = os.path.join("runs", result["run_name"], "agreement.csv")
with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["cos", "step_kl", "std"])
    writer.writeheader()
    writer.writerows(rows)
print(f"step agreement of {len(rows)} updates in {path}")
