"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): observation statistics that reach
the policy in the share of the step that the batch's evidence earns. The script absorbs every settled move of the
statistics (the networks compute the same function of the raw observation before and after it), which holds a
balanced task at its top but may slow a task still learning, whose inputs keep their unit scale only while the
statistics move. Here, with f the update's step fraction min(1, √(n / n̄)) (1 for TRPO's step), a share f of the
move reaches the networks and the rest is absorbed: after the move they compute the old function of the statistics

    μ_f = μ + f·(μ′ − μ),   σ_f = σ·(σ′/σ)^f,   by   W ← W·diag(σ′/σ_f),  b ← b + W·(μ′ − μ_f)/σ_f

(f = 0: the script's absorption; f = 1: the move reaches the input whole, as without absorption). A batch with the
whole trust region's evidence moves the statistics as before; one with 5% of it lets 5% of their move through.

    python benchmark/probe_partial_absorption.py --env-id Ant-v4 --seed 0 --exp-name partial_absorption

Any flag of the script can follow; the rest of the run is the script's."""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

policy_update, last = trpo.trpo_policy_update, {"step_fraction": 1.0}


def recorded_update(*args, **kwargs):
    stats = policy_update(*args, **kwargs)
    last["step_fraction"] = stats.get("step_fraction", 1.0) if stats["acceptance_step"] else 0.0
    return stats


def partial_absorption(layer, old, new, settled=0.01):
    f = last["step_fraction"]
    std, new_std = np.sqrt(old.var + 1e-8), np.sqrt(new.var + 1e-8)
    small = (np.abs(new.mean - old.mean) / std <= settled) & (np.abs(np.log(new_std / std)) <= settled)
    std_f, mean_f = std * (new_std / std) ** f, old.mean + f * (new.mean - old.mean)
    scale, shift = np.where(small, new_std / std_f, 1.0), np.where(small, (new.mean - mean_f) / std_f, 0.0)
    with torch.no_grad():
        weight = layer.weight.clone()
        layer.weight.mul_(torch.as_tensor(scale, dtype=weight.dtype, device=weight.device))
        layer.bias.add_(weight @ torch.as_tensor(shift, dtype=weight.dtype, device=weight.device))


trpo.trpo_policy_update, trpo.absorb_statistics_move = recorded_update, partial_absorption
trpo.train(trpo.parse_args(sys.argv[1:]))
