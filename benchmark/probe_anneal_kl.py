"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): trpo_continuous.py with a trust region
that decays linearly over the run, δ_k = δ (1 − k / K) for update k of K (Robbins–Monro step sizes: with noisy
gradients a constant step leaves the policy wandering around an optimum, a decaying one lets it settle).

    python benchmark/probe_anneal_kl.py --env-id InvertedDoublePendulum-v4 --seed 0 --exp-name anneal_kl

Any flag of the script can follow; the rest of the run is the script's."""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

update, updates = trpo.trpo_policy_update, [0]


def annealed_update(agent, obs, actions, old_logprobs, advantages, args, *rest, **kwargs):
    updates[0] += 1
    progress = (updates[0] - 1) / (args.total_timesteps // (args.num_envs * args.num_steps))
    args = dataclasses.replace(args, target_kl=args.target_kl * (1 - progress))
    return update(agent, obs, actions, old_logprobs, advantages, args, *rest, **kwargs)


trpo.trpo_policy_update = annealed_update
trpo.train(trpo.parse_args(sys.argv[1:]))
