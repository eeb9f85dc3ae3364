"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): trpo_continuous.py with a floor
on the policy's σ (log σ clamped to at least log FLOOR after each update), to tell whether the collapse needs σ → 0.

    FLOOR=0.1 python benchmark/probe_std_floor.py --env-id InvertedDoublePendulum-v4 --seed 0 --exp-name floor0.1

Any flag of the script can follow; the rest of the run is the script's."""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

update, floor = trpo.trpo_policy_update, math.log(float(os.environ.get("FLOOR", "0.1")))


def floored_update(agent, *args, **kwargs):
    stats = update(agent, *args, **kwargs)
    with torch.no_grad():
        agent.actor_logstd.clamp_(min=floor)
    return stats


trpo.trpo_policy_update = floored_update
trpo.train(trpo.parse_args(sys.argv[1:]))
