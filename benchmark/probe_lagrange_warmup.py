"""A probe of the safe-RL issue (benchmark/README.md, "TRPO-Lagrangian at OmniSafe's budgets"): trpo_continuous.py
with a warm-up of the multiplier. For the first WARMUP_UPDATES updates that move λ, λ stays at its initial value
and its rule's memory does not move (J_c's window still fills), so that the policy first learns to reach goals
as plain TRPO does; then the rule starts as it would at step 0.

    WARMUP_UPDATES=12 python benchmark/probe_lagrange_warmup.py --env-id SafetyPointGoal1-v0 --seed 0 \\
        --cost-limit 25 --total-timesteps 2000000 <omnisafe-pid flags> --exp-name pid_warmup240k

The count is kept in λ's state, so it survives --resume (run the probe again with --resume PATH). Any flag of
the script can follow; the rest of the run is the script's."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

update_lagrange, warmup_updates = trpo.update_lagrange, int(os.environ.get("WARMUP_UPDATES", "12"))


def warmed_up_update(lagrange: dict, episode_costs: list, args) -> dict:
    moved = update_lagrange(lagrange, episode_costs, args)
    count = lagrange.get("probe_updates", 0) + 1
    if count <= warmup_updates:  # keep λ and its memory; keep the window of costs and J_c
        moved = dict(moved, multiplier=lagrange["multiplier"], pid=lagrange["pid"], adam_moments=lagrange["adam_moments"])
    return dict(moved, probe_updates=count)


trpo.update_lagrange = warmed_up_update
trpo.train(trpo.parse_args(sys.argv[1:]))
