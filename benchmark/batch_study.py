"""The batch study's report (benchmark/README.md, "The batch"), from committed curves only:

    .venv/bin/python -m pip install -r benchmark/requirements.txt -c requirements.txt   # rliable, once
    .venv/bin/python benchmark/batch_study.py                                          # after batch_study.sh's runs
    .venv/bin/python benchmark/batch_study.py --random-returns                         # measure the random policies

Per task and candidate: last 20 / best 20 / eval (as report.py defines them), the mean over seeds with a 95%
percentile-bootstrap interval. Across tasks, rliable (Agarwal et al., NeurIPS 2021): the interquartile mean (IQM) of
normalized scores with 95% stratified-bootstrap intervals, the probability of improvement of each pair of candidates,
and the performance profile of last 20; then the README's rows (the scripts' default candidate). A task's score is
normalized between a random policy's return (measured here: benchmark/results/batch/random_returns.json) and a
reference (REFERENCES: the best published TRPO number at about 1M steps where there is one). Writes
benchmark/results/batch/study.md, profile.png and iqm.png. The seeds counted are 0 to 4 (fewer while runs are
missing: each task then counts the seeds that every candidate has)."""
import argparse
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (this folder's report.py: its curve reader and run summary)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OUT = os.path.join(RESULTS, "batch")
CANDIDATES = {"batch1024": "16 × 64", "batch2048": "16 × 128", "batch4096": "16 × 256"}
COLORS = dict(zip(CANDIDATES, ["C0", "C1", "C2"]))
SEEDS = range(5)
# env id: (reference return, where it comes from)
REFERENCES = {
    "HalfCheetah-v4": (4471.2, "Tianshou TRPO, best, 1M"),
    "Hopper-v4": (3618.4, "SB3-contrib TRPO, eval, 1M"),
    "Ant-v4": (3000.0, "no published TRPO at 1M: 3000, about the best evaluation here"),
    "InvertedDoublePendulum-v4": (8435.2, "Tianshou TRPO, best, 1M"),
    "Pendulum-v1": (-174.6, "SB3-contrib TRPO, eval, 100k"),
    "SafetyPointGoal1-v0": (27.20, "OmniSafe TRPO, 1e7"),
    "SafetyHalfCheetahVelocity-v1": (2884.68, "OmniSafe TRPOLag, cost limit 25, 1e7"),
}
# batch1024 is the defaults before this study: its seeds 0 to 2 (and Ant-v4's 3 and 4) are earlier folders' runs of
# the same update (identity.py), read under their own exp names; its seeds 3 and 4 elsewhere are results/batch's.
EARLIER = [("readme", "defaults"), ("readme", "lag25"), ("defaults", "no_anneal")]
METRICS = {"return": "last 20", "best": "best 20", "eval": "eval"}


def runs_of(candidate: str) -> dict:
    """{env id: {seed: run summary}} of a candidate, from the committed curves."""
    return runs_in([("batch", candidate)] + (EARLIER if candidate == "batch1024" else []))


def runs_in(sources: list) -> dict:
    """{env id: {seed: run summary}} of the finished runs of (results folder, exp name) pairs, the first pair first."""
    found = {}
    for folder, exp in sources:
        for path in sorted(glob.glob(os.path.join(RESULTS, folder, "curves", f"*__{exp}__*.csv.gz"))):
            run_args, series = report.read_curve_csv(path)
            if "eval/episodic_return" not in series:
                continue  # a run not finished
            run = report.load_run(run_args, series, os.path.basename(path), report.Args(results_dir=""))
            found.setdefault(run["env"], {}).setdefault(run["seed"], run)  # the study's own runs first
    return found


def readme_rows(runs: dict) -> list:
    """The README's results table: the scripts' default candidate on the suite (its seeds 0 to 4), CartPole-v1 from
    results/readme, and OmniSafe's own runs beside the safe tasks: TRPO on SafetyPointGoal1-v0 (results/main) and
    TRPOLag on SafetyHalfCheetahVelocity-v1 (results/safe), 3 seeds each."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import trpo_continuous
    default = next(c for c, shape in CANDIDATES.items() if shape == f"16 × {trpo_continuous.Args.num_steps}")
    rows = {env_id: [runs[default][env_id][s] for s in SEEDS if s in runs[default].get(env_id, {})] for env_id in REFERENCES}
    rows["CartPole-v1 (trpo_discrete.py)"] = list(runs_in([("readme", "defaults")]).get("CartPole-v1", {}).values())
    for task, folder, algo, env_id in [("SafetyPointGoal1-v0, OmniSafe's TRPO", "main", "TRPO", "SafetyPointGoal1-v0"), (
            "SafetyHalfCheetahVelocity-v1, OmniSafe's TRPOLag", "safe", "TRPOLag", "SafetyHalfCheetahVelocity-v1")]:
        omnisafe = glob.glob(os.path.join(RESULTS, folder, "omnisafe", f"{algo}-{{{env_id}}}", "seed-*", "progress.csv"))
        rows[task] = [  # its last epoch's mean episode: no best 20 of episodes
            dict(report.load_omnisafe_run(path, report.Args(results_dir="")), best=np.nan) for path in sorted(omnisafe)]
    lines = ["## The README's rows", "", f"The scripts' defaults ({default}, `trpo_continuous.py`'s `num_steps` "
             f"{trpo_continuous.Args.num_steps}): mean over seeds [95% bootstrap interval]", "",
             "| task | last 20 | best 20 | eval | cost | cost after 200k | seeds |", "|---|---|---|---|---|---|---|"]
    for task, picked in rows.items():
        cells = []
        for key in ("return", "best", "eval", "cost", "cost_after"):
            cells.append(rounded_interval(np.array([r[key] for r in picked])))
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {len(picked)} |")
    return lines + [""]


def rounded_interval(values: np.ndarray) -> str:
    """"mean [low, high]" as the README writes it (no decimals from 100 up, else one); "" without values."""
    if not len(values) or np.isnan(values).any():
        return ""
    return "{:.{d}f} [{:.{d}f}, {:.{d}f}]".format(*interval(values), d=0 if np.abs(values).mean() >= 100 else 1)


def interval(scores: np.ndarray, reps: int = 10000) -> tuple:
    """The mean and its 95% percentile-bootstrap interval over seeds (the same resamples for the same scores)."""
    means = np.random.default_rng(0).choice(scores, (reps, len(scores))).mean(axis=1)
    return scores.mean(), np.percentile(means, 2.5), np.percentile(means, 97.5)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) of two (runs × tasks) score matrices: on each task, the fraction of pairs of runs where X's is greater
    (ties count half: Mann-Whitney's U / (n_x n_y)), averaged over the tasks."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def random_returns(episodes: int = 10) -> dict:
    """Each task's mean return of uniformly random actions over `episodes` episodes (seed 0)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import trpo_continuous
    returns = {}
    for env_id in REFERENCES:
        env = trpo_continuous.make_env(env_id, 0, False, "")()
        env.reset(seed=0)
        env.action_space.seed(0)
        episode_returns = []
        while len(episode_returns) < episodes:
            *_, terminated, truncated, info = env.step(env.action_space.sample())
            if terminated or truncated:
                episode_returns.append(float(info["episode"]["r"]))
                env.reset()
        returns[env_id] = float(np.mean(episode_returns))
        print(f"{env_id}: {returns[env_id]:.2f}", flush=True)
    return returns


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--random-returns", action="store_true", help="measure the random policies' returns first")
    if parser.parse_args().random_returns:
        with open(os.path.join(OUT, "random_returns.json"), "w") as f:
            json.dump(random_returns(), f, indent=1)
    from rliable import library as rly, metrics, plot_utils
    with open(os.path.join(OUT, "random_returns.json")) as f:
        random = json.load(f)
    runs = {candidate: runs_of(candidate) for candidate in CANDIDATES}
    lines = ["# The batch study", "", "Mean over seeds [95% bootstrap interval]; seeds: how many are counted. Written by "
             "`benchmark/batch_study.py` from the committed curves.", ""]
    seeds = {}  # env id: the seeds that every candidate has
    lines += ["## Per task", "", "| task | " + " | ".join(f"{c} ({shape})" for c, shape in CANDIDATES.items())
              + " | seeds |", "|---|" + "---|" * (len(CANDIDATES) + 1)]
    for env_id in REFERENCES:
        seeds[env_id] = [s for s in SEEDS if all(s in runs[c].get(env_id, {}) for c in CANDIDATES)]
        # the cost of the same episodes, and after 200k steps (with a limit): safe tasks only
        for key, name in [*METRICS.items(), ("cost", "cost"), ("cost_after", "cost after 200k")]:
            cells = [rounded_interval(np.array([runs[c][env_id][s][key] for s in seeds[env_id]])) for c in CANDIDATES]
            if any(cells):
                lines.append(f"| {env_id}, {name} | " + " | ".join(cells) + f" | {len(seeds[env_id])} |")
    lines += ["", "Each task's score is normalized between uniformly random actions' return and a reference:", "",
              "| task | random actions | reference | its source |", "|---|---|---|---|"]
    lines += [f"| {env_id} | {random[env_id]:.2f} | {reference} | {source} |"
              for env_id, (reference, source) in REFERENCES.items()] + [""]
    # rliable: a (runs × tasks) matrix of normalized scores per candidate, with as many runs on every task
    tasks = [env_id for env_id in REFERENCES if seeds[env_id]]  # all of them once every run is in
    count = min((len(seeds[env_id]) for env_id in tasks), default=0)
    lines += ["## Across tasks: interquartile mean of normalized scores", "",
              f"rliable, {count} seeds on each of {len(tasks)} tasks ({', '.join(tasks)}), 95% stratified-bootstrap "
              "intervals (50000 resamples)", "",
              "| candidate | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    if count == 0:
        lines.append("| (no task has a seed of every candidate yet) |")
    else:
        normalized = {metric: {candidate: np.array([[  # each task's first `count` seeds that every candidate has
            (runs[candidate][env_id][seeds[env_id][k]][metric] - random[env_id]) / (REFERENCES[env_id][0] - random[env_id])
            for env_id in tasks] for k in range(count)]) for candidate in CANDIDATES} for metric in METRICS}
        estimates = {metric: rly.get_interval_estimates(normalized[metric], lambda x: np.array([metrics.aggregate_iqm(x)]),
                                                        reps=50000) for metric in METRICS}
        for candidate in CANDIDATES:
            lines.append(f"| {candidate} | " + " | ".join(
                f"{estimates[m][0][candidate][0]:.3f} [{estimates[m][1][candidate][0, 0]:.3f}, "
                f"{estimates[m][1][candidate][1, 0]:.3f}]" for m in METRICS) + " |")
        # rliable's probability of improvement (its metric, vectorized: 100 times faster than scipy's per call)
        pairs = [(x, y) for i, y in enumerate(CANDIDATES) for x in list(CANDIDATES)[i + 1:]]
        lines += ["", f"Probability of improvement P(X > Y), averaged over the {len(tasks)} tasks, 95% stratified-bootstrap "
                  "intervals (2000 resamples); 0.5: neither", "",
                  "| X | Y | " + " | ".join(METRICS.values()) + " |", "|---|---|" + "---|" * len(METRICS)]
        improvement = {metric: rly.get_interval_estimates(
            {f"{x},{y}": (normalized[metric][x], normalized[metric][y]) for x, y in pairs},
            probability_of_improvement, reps=2000) for metric in METRICS}
        for x, y in pairs:
            lines.append(f"| {x} | {y} | " + " | ".join("{:.2f} [{:.2f}, {:.2f}]".format(
                *np.ravel(improvement[m][0][f"{x},{y}"]), *np.ravel(improvement[m][1][f"{x},{y}"])) for m in METRICS)
                + " |")
        figure, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 2.5))
        for ax, metric in zip(axes, METRICS):
            points, intervals = estimates[metric]
            for k, candidate in enumerate(CANDIDATES):
                ax.errorbar(points[candidate][0], k, xerr=[[points[candidate][0] - intervals[candidate][0, 0]],
                                                            [intervals[candidate][1, 0] - points[candidate][0]]], fmt="o",
                            color=COLORS[candidate])
            ax.set_yticks(range(len(CANDIDATES)), [f"{c} ({s})" for c, s in CANDIDATES.items()])
            ax.set_title(f"IQM, {METRICS[metric]}")
            ax.set_xlabel("normalized score")
        figure.tight_layout()
        figure.savefig(os.path.join(OUT, "iqm.png"), dpi=100)
        thresholds = np.linspace(0.0, 1.5, 61)
        profiles, bands = rly.create_performance_profile(normalized["return"], thresholds)
        figure, ax = plt.subplots(figsize=(6, 4))
        plot_utils.plot_performance_profiles(profiles, thresholds, performance_profile_cis=bands, ax=ax,
                                             xlabel=r"normalized score $\tau$ (last 20)",
                                             colors=COLORS)
        ax.legend(handles=[matplotlib.lines.Line2D([], [], color=COLORS[c], label=f"{c} ({s})")
                           for c, s in CANDIDATES.items()])
        figure.tight_layout()
        figure.savefig(os.path.join(OUT, "profile.png"), dpi=100)
        lines += ["", "![IQM](iqm.png)", "", "![performance profile](profile.png)"]
    lines += [""] + readme_rows(runs)
    with open(os.path.join(OUT, "study.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
