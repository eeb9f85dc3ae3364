"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): the evidence step with a share.
The script's step spends δ·min(1, n / n̄): a batch of exactly the moving mean's evidence gets the whole trust region,
so that every batch below the mean (about half, more while n falls and n̄ lags behind) gets less. Here a batch of
SHARE·n̄ or more spends all of δ and a weaker one δ·n / (SHARE·n̄):

    fraction = min(1, √(n / (SHARE·n̄)))     (SHARE = 1: the script's rule; SHARE → 0: TRPO's, always δ)

A balanced task at its top (evidence hundreds of times below n̄, kept there by the rare batch in which an episode fails)
keeps most of its protection; a task still learning (n within a factor of 2 of n̄) takes TRPO's full steps.

    SHARE=0.5 python benchmark/probe_evidence_share.py --env-id Ant-v4 --seed 0 --exp-name share_0.5

Any flag of the script can follow; the rest of the run is the script's."""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

share, evidence_step_fraction = float(os.environ.get("SHARE", "1")), trpo.evidence_step_fraction


def shared_fraction(evidence, mean_evidence, decay):
    fraction, mean_evidence = evidence_step_fraction(evidence, mean_evidence, decay)
    return min(1.0, fraction / math.sqrt(share)), mean_evidence


trpo.evidence_step_fraction = shared_fraction
trpo.train(trpo.parse_args(sys.argv[1:]))
