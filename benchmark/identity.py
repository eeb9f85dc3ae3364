"""Same mathematics across versions: short seeded runs of two versions of the scripts end on the same parameters.

    git worktree add /tmp/before <commit>                        # the version to compare with
    python benchmark/identity.py --scripts /tmp/before --out /tmp/identity-before
    python benchmark/identity.py --scripts . --out /tmp/identity-after --compare /tmp/identity-before

Three runs at seed 0, each in a temporary folder: (a) plain TRPO on HalfCheetah-v4 at the defaults, (b)
TRPO-Lagrangian with --lagrange-update pid --cost-line-search --cost-limit 25 on SafetyPointGoal1-v0 (each
env ends two episodes, so λ moves twice), (c) trpo_discrete.py on CartPole-v1 at the defaults; 40960 steps each
(about 3 minutes in all). Each run's final parameters and λ go to OUT/<case>.pt; with --compare, each is checked
against the other folder's: bit for bit, or the largest difference. --set gives further arguments to every case whose
script has them, e.g. the flags of an older version that give today's defaults (commit b09fbae's scripts took the
evidence step and absorbed statistics by default; today's take TRPO's step):

    git worktree add /tmp/b09 b09fbae
    python benchmark/identity.py --scripts /tmp/b09 --out /tmp/identity-b09 --set evidence_decay=0 absorb_statistics=false
    python benchmark/identity.py --scripts . --out /tmp/identity-now --compare /tmp/identity-b09"""
import argparse
import dataclasses
import importlib
import os
import sys
import tempfile

import torch
import yaml

CASES = {
    "halfcheetah": ("trpo_continuous", dict(env_id="HalfCheetah-v4")),
    "point_pid": ("trpo_continuous", dict(env_id="SafetyPointGoal1-v0", cost_limit=25.0, lagrange_update="pid",
                                          cost_line_search=True)),
    "cartpole": ("trpo_discrete", dict(env_id="CartPole-v1")),
}

parser = argparse.ArgumentParser()
parser.add_argument("--scripts", required=True, help="the folder holding the trpo_*.py to run")
parser.add_argument("--out", required=True, help="where each case's parameters are saved")
parser.add_argument("--compare", help="a folder of an earlier --out to compare with")
parser.add_argument("--cases", nargs="*", default=list(CASES))
parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE: further Args, for the cases whose script has them")
args = parser.parse_args()
sys.path.insert(0, os.path.abspath(args.scripts))
overrides = {key: yaml.safe_load(value) for key, value in (item.partition("=")[::2] for item in args.set)}
unknown = set(overrides) - {field.name for field in dataclasses.fields(importlib.import_module("trpo_continuous").Args)}
if unknown or not all("=" in item for item in args.set):
    raise SystemExit(f"error: --set takes KEY=VALUE with KEY an Args field of {args.scripts}/trpo_continuous.py; "
                     f"not {sorted(unknown) or args.set}")
os.makedirs(args.out, exist_ok=True)
out, compare = os.path.abspath(args.out), args.compare and os.path.abspath(args.compare)
os.chdir(tempfile.mkdtemp())
for case in args.cases:
    script, settings = CASES[case]
    module = importlib.import_module(script)
    fields = {field.name for field in dataclasses.fields(module.Args)}
    settings = settings | {key: value for key, value in overrides.items() if key in fields}
    result = module.train(module.Args(seed=0, total_timesteps=40960, **settings))
    saved = {"agent": {key: value.clone() for key, value in result["agent"].state_dict().items()},
             "lagrange_multiplier": result.get("lagrange_multiplier"), "episodic_return": result["episodic_return"]}
    torch.save(saved, os.path.join(out, f"{case}.pt"))
    line = f"{case}: return {saved['episodic_return']:.4f}, λ {saved['lagrange_multiplier']}"
    if compare:
        other = torch.load(os.path.join(compare, f"{case}.pt"), weights_only=False)
        ours, theirs = saved["agent"], other["agent"]
        if set(ours) != set(theirs):
            line += f"; different parameters: {sorted(set(ours) ^ set(theirs))}"
        elif all(torch.equal(ours[key], theirs[key]) for key in ours):
            line += f"; parameters bit-identical to {compare}'s (λ there {other['lagrange_multiplier']})"
        else:
            difference = max((ours[key] - theirs[key]).abs().max().item() for key in ours)
            line += f"; parameters differ from {compare}'s by at most {difference:.3g}"
    print(line, flush=True)
