"""The mean return / cost / λ of each window of steps, per run of a results folder: the windows behind
benchmark/README.md's "TRPO-Lagrangian at OmniSafe's budgets". Reads the compact curves that report.py writes
(<results>/curves/*.csv.gz) and OmniSafe's progress.csv files (<results>/omnisafe*/<algo>/<seed>/; each of their rows
is already a mean of its last 50 episodes, so those rows are averaged as they are). A window that a run has only
begun is marked "to <its last step>".

    python benchmark/window_means.py benchmark/results/point2m --window 200000
"""
import argparse
import csv
import glob
import gzip
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("results")
parser.add_argument("--window", type=int, default=200_000)
args = parser.parse_args()


def ours(path):
    series = {}
    with gzip.open(path, "rt") as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            if row[0] != "tag":
                series.setdefault(row[0], []).append((float(row[1]), float(row[2])))
    return {tag: np.array(points) for tag, points in series.items()}


def omnisafe(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(row["TotalEnvSteps"]) for row in rows])
    column = {"charts/episodic_return": "Metrics/EpRet", "charts/episodic_cost": "Metrics/EpCost",
              "charts/lagrange_multiplier": "Metrics/LagrangeMultiplier"}
    return {tag: np.stack([steps, [float(row[name]) for row in rows]], 1) for tag, name in column.items()}


runs = {os.path.basename(path)[: -len(".csv.gz")]: ours(path)
        for path in sorted(glob.glob(f"{args.results}/curves/*.csv.gz"))}
for path in sorted(glob.glob(f"{args.results}/omnisafe*/*/*/progress.csv")):
    runs[" ".join(path.split(os.sep)[-4:-1:2])] = omnisafe(path)  # e.g. "omnisafe seed-000-<date>"
tags = ["charts/episodic_return", "charts/episodic_cost", "charts/lagrange_multiplier"]
for name, series in runs.items():
    last = series["charts/episodic_return"][-1, 0]
    print(name)
    for start in range(0, int(last), args.window):
        cells = []
        for tag in tags:
            points = series.get(tag, np.zeros((0, 2)))
            inside = points[(points[:, 0] > start) & (points[:, 0] <= start + args.window), 1]
            cells.append(f"{inside.mean():.{2 if 'lagrange' in tag else 1}f}" if len(inside) else "-")
        note = f" (to {last / 1e6:.2f}M)" if last < start + args.window else ""
        print(f"  {start / 1e6:.1f}–{(start + args.window) / 1e6:.1f}M: {' / '.join(cells)}{note}")
