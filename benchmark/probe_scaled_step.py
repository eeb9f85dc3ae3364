"""A probe of the collapse study (benchmark/README.md, "Keeping what was learned"): a step as long as the batch's
evidence. TRPO's step spends the whole δ on any batch: β = √(2δ / xᵀFx) cancels the advantages' scale. At the top of
a balance task most rollouts hold no fall and tiny advantages, a few hold a fall and advantages ten times larger;
each takes the same step, so the expected step follows the frequent weak batches, not the expected gradient. Here,
with n_k = ĝᵀF⁻¹ĝ of the advantages before standardization (in the reward scaler's units) and n̄ its moving mean,

    Δθ = βx · min(1, √(n_k / n̄)),   n̄ ← decay·n̄ + (1 − decay)·n_k   (n̄ = n_2 at first)

so that a batch of average evidence takes TRPO's step and a weaker one a proportionally shorter one (a natural
gradient step at a fixed rate). The first update takes TRPO's step and stays out of n̄: its advantages come from an
untrained critic (n_1 was 800 times n_2 on InvertedDoublePendulum, and held n̄ up for the whole run). Per-update
n_k, n̄ and the fraction go to <run folder>/scaled_step.csv:

    PROBE_DECAY=0.99 python benchmark/probe_scaled_step.py --env-id InvertedDoublePendulum-v4 --seed 0 \\
        --exp-name scaled0.99skip --save-model

`trpo_continuous.py --evidence-decay 0.99` is this probe's default setting, with the same parameters bit for bit
(checked over 40 updates). The probe keeps the variants: PROBE_DECAY=1 makes n̄ the mean over the whole run;
PROBE_UNITS=raw measures n_k in the reward's own units (n_k times the reward scaler's Var[G]); PROBE_SKIP=0 lets the
first update into n̄; PROBE_FREEZE_OBS=N stops the observation statistics after N observations. Any flag of the
script can follow."""
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trpo_continuous as trpo  # noqa: E402

decay = float(os.environ.get("PROBE_DECAY", "0.99"))
raw_units, skip_first = os.environ.get("PROBE_UNITS", "scaled") == "raw", os.environ.get("PROBE_SKIP", "1") == "1"
standardize, rows, state = trpo.standardize, [], dict(std=None, reference=None, count=0, scaler=None)


freeze_obs, update_statistics = float(os.environ.get("PROBE_FREEZE_OBS", "inf")), trpo.RunningMeanStd.update


def frozen_update(self, batch):
    if self.mean.shape == () or self.count < freeze_obs:  # the reward scaler's statistics go on
        update_statistics(self, batch)


trpo.RunningMeanStd.update = frozen_update


class RecordedRewardScaler(trpo.RewardScaler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        state["scaler"] = self


def recording_standardize(x, scale=True):
    if scale and state["std"] is None:  # the reward advantages: the first scaled call of each update
        state["std"] = x.std().item()
    return standardize(x, scale)


def scaled_max_step_size(xHx, target_kl):
    evidence = state["std"] ** 2 * xHx  # ĝᵀF⁻¹ĝ with the advantages unstandardized: x scales with their std
    if raw_units and state["scaler"] is not None:  # in the reward's own units: undo the reward scaler
        evidence *= float(state["scaler"].return_rms.var) + 1e-8
    state["std"], state["count"] = None, state["count"] + 1
    if state["count"] == 1 and skip_first:
        rows.append(dict(evidence=evidence, reference=float("nan"), fraction=1.0))
        return math.sqrt(2.0 * target_kl / xHx)
    if state["reference"] is None:
        state["reference"] = evidence
    elif decay >= 1:
        state["reference"] += (evidence - state["reference"]) / (state["count"] - skip_first)
    else:
        state["reference"] = decay * state["reference"] + (1 - decay) * evidence
    fraction = min(1.0, math.sqrt(evidence / state["reference"]))
    rows.append(dict(evidence=evidence, reference=state["reference"], fraction=fraction))
    return math.sqrt(2.0 * target_kl / xHx) * fraction


trpo.standardize, trpo.max_step_size = recording_standardize, scaled_max_step_size
trpo.RewardScaler = RecordedRewardScaler
result = trpo.train(trpo.parse_args(sys.argv[1:]))
path = os.path.join("runs", result["run_name"], "scaled_step.csv")
with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["evidence", "reference", "fraction"])
    writer.writeheader()
    writer.writerows(rows)
print(f"the step fractions of {len(rows)} updates in {path}")
