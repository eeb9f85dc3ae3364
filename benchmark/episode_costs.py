"""How the episodic cost of a results folder's runs is spread: per run (from its curves CSV, which report.py
writes), over the episodes that ended after --after steps, the fraction that cost nothing, the fraction that cost
more than --high, the share of all their cost that those costly episodes pay, and the mean return.

    python benchmark/episode_costs.py benchmark/results/safe --env-id SafetyPointGoal1-v0 --after 500000
"""
import argparse
import csv
import glob
import gzip
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("results_dir")
parser.add_argument("--env-id", default="SafetyPointGoal1-v0")
parser.add_argument("--after", type=int, default=500_000, help="count the episodes that ended after this step")
parser.add_argument("--high", type=float, default=100.0, help="an episode costing more than this is a costly one")
args = parser.parse_args()

paths = sorted(glob.glob(os.path.join(args.results_dir, "curves", f"{args.env_id}__*.csv.gz")))
if not paths:
    raise SystemExit(f"error: no {args.env_id} run in {args.results_dir}/curves (run benchmark/report.py on it first)")
print(f"{args.env_id}, episodes that ended after {args.after} steps")
print("| run | episodes | cost 0 | cost > {0:g} | share of the cost paid by cost > {0:g} | mean cost | mean return |"
      .format(args.high))
print("|---|---|---|---|---|---|---|")
for path in paths:
    with gzip.open(path, "rt") as file:
        run_args = json.loads(file.readline()[1:])
        episodes = {"charts/episodic_cost": [], "charts/episodic_return": []}
        for row in csv.DictReader(file):
            if row["tag"] in episodes and int(row["step"]) > args.after:
                episodes[row["tag"]].append(float(row["value"]))
    costs, returns = np.array(episodes["charts/episodic_cost"]), np.array(episodes["charts/episodic_return"])
    if len(costs) == 0:
        continue
    costly = costs > args.high
    print(f"| {run_args['exp_name']} seed {run_args['seed']} | {len(costs)} | {np.mean(costs == 0):.2f} | "
          f"{np.mean(costly):.2f} | {costs[costly].sum() / max(costs.sum(), 1e-9):.2f} | {costs.mean():.1f} | "
          f"{returns.mean():.1f} |")
