"""Tables and learning curves from the TensorBoard logs of a results folder (`benchmark/run.py` fills one):

    python benchmark/report.py benchmark/results/main
    python benchmark/report.py benchmark/results/main --thresholds CartPole-v1 475 HalfCheetah-v4 1500

Writes `<results-dir>/report.md` (also printed) and one `<env_id>.png` per env: the return (and the cost,
for envs that report one) against steps, the mean over seeds with a band of ± one standard deviation,
one line per `exp_name` (a dashed line marks a run's `--cost-limit`). Beside each env's table stand the
published results for the same task (benchmark/reference-results.md, with their sources and settings).
OmniSafe's own runs (benchmark/peers/omnisafe_trpo.py --log-dir <results-dir>/omnisafe) are read from
their progress.csv and reported as exp_name `omnisafe-<algo>`: each of their points is already a mean, of the
last 50 episodes (its logger's window), so they are not averaged again.

return / cost: the mean over the last `window` episodes (the window of the console and of train()); best: the
largest mean return of `window` consecutive episodes of the run (its best point, which Tianshou reports; OmniSafe's:
its best logged mean); eval: the mean return of the deterministic evaluation that `--save-model` runs; steps to
threshold: the first step at which the moving mean return reaches the env's threshold; "return at S": the moving mean at
S = k/curve_points of the env's total_timesteps, k = 1, 2, ...: a coarse learning curve in numbers; over limit: for
a run with a --cost-limit, the fraction of its episodes after the first `over_limit_after` steps whose cost
exceeds the limit (OmniSafe's: of its epochs' mean costs), and their mean cost ("cost after": unlike the last
window's, it does not depend on where λ's oscillation stands at the end). Runs with a Lagrange multiplier get a
third panel, λ. Over seeds, "mean ± std" is NumPy's population std (ddof 0)."""
import csv
import glob
import gzip
import io
import json
import os
import sys
import dataclasses
from dataclasses import dataclass
import warnings
from typing import Dict

import matplotlib

matplotlib.use("Agg")  # files only: no screen needed
import matplotlib.pyplot as plt
import numpy as np
import tyro
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# Published TRPO results for the same tasks: benchmark/reference-results.md gives the sources.
PUBLISHED = {
    "CartPole-v1": ["SB3-contrib, rl-baselines3-zoo: 500.0 ± 0.0 (1e5 steps, one run, deterministic evaluation)"],
    "HalfCheetah-v4": ["SB3-contrib, rl-baselines3-zoo: 1785.5 ± 68.7 (HalfCheetah-v3, 1e6 steps, one run, "
                       "deterministic evaluation; 2 envs × 1024 steps, target_kl 0.04 averaged = 0.24 summed here)",
                       "Tianshou: 4471.2 ± 804.9 (HalfCheetah-v3, best mean within 1e6 steps, 10 seeds, 16 envs)"],
    "Hopper-v4": ["SB3-contrib, rl-baselines3-zoo: 3618.4 ± 356.8 (Hopper-v3, 1e6 steps, one run, deterministic evaluation)",
                  "Tianshou: 2046.0 ± 1037.9 (Hopper-v3, best mean within 1e6 steps, 10 seeds, 16 envs)"],
    "SafetyPointGoal1-v0": ["OmniSafe TRPO: return 27.20 ± 0.44, cost 45.88 ± 11.27 (1e7 steps, 5 seeds)",
                            "OmniSafe TRPOLag, cost limit 25: return 18.51 ± 3.83, cost 22.98 ± 8.45 (1e7 steps)"],
    "SafetyHalfCheetahVelocity-v1": ["OmniSafe TRPO: return 6490.76 ± 2507.18, cost 734.26 ± 321.88 (1e7 steps, 5 seeds)",
                                     "OmniSafe TRPOLag, cost limit 25: return 2884.68 ± 77.47, cost 9.04 ± 11.83 "
                                     "(1e7 steps)"],
}


@dataclass
class Args:
    results_dir: tyro.conf.Positional[str]
    """a results folder: its runs/ holds one folder per run (TensorBoard logs and args.yaml)"""
    thresholds: Dict[str, float] = dataclasses.field(default_factory=lambda: {"CartPole-v1": 475.0})
    """per env id, report the first step at which the moving mean return reaches this value"""
    curve_points: int = 4
    """report the moving mean return (and cost) after each 1/curve_points of the env's total_timesteps"""
    window: int = 20
    """the number of most recent episodes averaged"""
    over_limit_after: int = 200_000
    """the fraction of episodes over the cost limit counts the episodes after this many steps"""


def scalars(accumulator: EventAccumulator, tag: str):
    """(steps, values) of one TensorBoard tag; empty arrays when the run did not log it."""
    if tag not in accumulator.Tags()["scalars"]:
        return np.array([], int), np.array([])
    events = accumulator.Scalars(tag)
    return np.array([e.step for e in events]), np.array([e.value for e in events])


def moving_mean_at(steps: np.ndarray, values: np.ndarray, at_steps, window: int) -> np.ndarray:
    """For each step s of at_steps, the mean of the last `window` values logged at or before s (nan if none)."""
    counts = np.searchsorted(steps, at_steps, side="right")
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    starts = np.maximum(counts - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (cumulative[counts] - cumulative[starts]) / (counts - starts), np.nan)


CURVE_TAGS = ["charts/episodic_return", "charts/episodic_cost", "charts/SPS", "eval/episodic_return",
              "charts/lagrange_multiplier"]


def read_event_run(run_dir: str) -> tuple:
    """(arguments, {tag: (steps, values, wall_times)}) of one run folder's TensorBoard logs and args.yaml."""
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    with open(os.path.join(run_dir, "args.yaml")) as f:
        run_args = yaml.safe_load(f)
    found = accumulator.Tags()["scalars"]
    series = {tag: tuple(np.array(column) for column in zip(*[(e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)]))
              for tag in CURVE_TAGS if tag in found}
    return run_args, series


def write_curve_csv(path: str, run_args: dict, series: dict):
    """The run's curves in one small gzipped CSV: a first line `# {arguments as JSON}`, then tag, step, value,
    wall_time."""
    text = io.StringIO(newline="")
    text.write("# " + json.dumps({key: run_args[key] for key in ("env_id", "exp_name", "seed", "total_timesteps")}
                                 | {"cost_limit": run_args.get("cost_limit")}) + "\n")
    writer = csv.writer(text)
    writer.writerow(["tag", "step", "value", "wall_time"])
    for tag, (steps, values, walls) in series.items():
        writer.writerows((tag, int(step), f"{value:.6g}", f"{wall:.3f}") for step, value, wall in zip(steps, values, walls))
    with open(path, "wb") as f:  # mtime 0: the same curves give the same bytes, so git sees no change on a rerun
        f.write(gzip.compress(text.getvalue().encode(), mtime=0))


def read_curve_csv(path: str) -> tuple:
    with gzip.open(path, "rt") as f:
        run_args = json.loads(f.readline()[2:])
        rows = list(csv.DictReader(f))
    series = {}
    for tag in CURVE_TAGS:
        picked = [(int(row["step"]), float(row["value"]), float(row["wall_time"])) for row in rows if row["tag"] == tag]
        if picked:
            series[tag] = tuple(np.array(column) for column in zip(*picked))
    return run_args, series


def best_mean(values: np.ndarray, window: int) -> float:
    """The largest mean of `window` consecutive values (of all of them when there are fewer; nan when none)."""
    if len(values) == 0:
        return float("nan")
    window = min(window, len(values))
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    return float((cumulative[window:] - cumulative[:-window]).max() / window)


def load_run(run_args: dict, series: dict, name: str, args: Args) -> dict:
    """One run's summary and curves, from its arguments and its {tag: (steps, values, wall_times)}."""
    empty = (np.array([], int), np.array([]), np.array([]))
    steps, returns, _ = series.get("charts/episodic_return", empty)
    cost_steps, costs, _ = series.get("charts/episodic_cost", empty)
    sps_steps, sps, sps_walls = series.get("charts/SPS", empty)
    _, eval_returns, _ = series.get("eval/episodic_return", empty)
    multiplier_steps, multipliers, _ = series.get("charts/lagrange_multiplier", empty)
    if len(sps_steps) == 0:
        raise SystemExit(f"error: {name} has no finished update (no charts/SPS); is the run finished?")
    reached = None
    if run_args["env_id"] in args.thresholds:
        moving = moving_mean_at(steps, returns, steps, args.window)
        full_window = np.arange(len(steps)) >= args.window - 1
        above = np.flatnonzero((moving >= args.thresholds[run_args["env_id"]]) & full_window)
        reached = int(steps[above[0]]) if len(above) else None
    last_step = int(sps_steps[-1])
    first_wall = min(walls[0] for _, _, walls in series.values())
    return {"env": run_args["env_id"], "exp": run_args["exp_name"], "seed": run_args["seed"], "steps": last_step,
            "budget": run_args["total_timesteps"], "batch": int(np.diff(sps_steps, prepend=0)[-1]),  # one update's steps
            "window": args.window, "cost_limit": run_args.get("cost_limit"),
            "episodes": (steps, returns, cost_steps, costs), "multiplier": (multiplier_steps, multipliers),
            "over_limit": over_limit(cost_steps, costs, run_args.get("cost_limit"), args.over_limit_after),
            "cost_after": cost_after(cost_steps, costs, run_args.get("cost_limit"), args.over_limit_after),
            "return": moving_mean_at(steps, returns, [last_step], args.window)[0],
            "best": best_mean(returns, args.window),
            "cost": moving_mean_at(cost_steps, costs, [last_step], args.window)[0],
            "eval": eval_returns.mean() if len(eval_returns) else float("nan"), "reached": reached, "sps": sps[-1],
            "wall_min": (sps_walls[-1] - first_wall) / 60}


def over_limit(steps: np.ndarray, costs: np.ndarray, cost_limit, after: int) -> float:
    """The fraction of the episodes logged after `after` steps whose cost exceeds cost_limit (nan without a limit)."""
    late = costs[steps > after]
    return float(np.mean(late > cost_limit)) if cost_limit is not None and len(late) else float("nan")


def cost_after(steps: np.ndarray, costs: np.ndarray, cost_limit, after: int) -> float:
    """The mean cost of the episodes logged after `after` steps (nan without a limit)."""
    late = costs[steps > after]
    return float(np.mean(late)) if cost_limit is not None and len(late) else float("nan")


def load_omnisafe_run(progress_csv: str, args: Args) -> dict:
    """An OmniSafe run (its progress.csv and config.json) in load_run's format."""
    with open(os.path.join(os.path.dirname(progress_csv), "config.json")) as f:
        config = json.load(f)
    with open(progress_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"error: {progress_csv} has no finished epoch; is the run finished?")
    steps = np.array([float(row["TotalEnvSteps"]) for row in rows])
    returns = np.array([float(row["Metrics/EpRet"]) for row in rows])
    costs = np.array([float(row["Metrics/EpCost"]) for row in rows])
    multipliers = np.array([float(row["Metrics/LagrangeMultiplier"]) for row in rows if "Metrics/LagrangeMultiplier" in row])
    reached = None
    if config["env_id"] in args.thresholds:
        above = np.flatnonzero(returns >= args.thresholds[config["env_id"]])
        reached = int(steps[above[0]]) if len(above) else None
    wall = float(rows[-1]["Time/Total"])
    lagrange = config.get("lagrange_cfgs") or {}
    return {"env": config["env_id"], "exp": f"omnisafe-{config['algo']}", "seed": config["seed"],
            "steps": int(steps[-1]), "budget": config["train_cfgs"]["total_steps"],
            "batch": config["algo_cfgs"]["steps_per_epoch"], "window": 1,
            "cost_limit": lagrange.get("cost_limit"), "episodes": (steps, returns, steps, costs),
            "multiplier": (steps[: len(multipliers)], multipliers),
            "over_limit": over_limit(steps, costs, lagrange.get("cost_limit"), args.over_limit_after),
            "cost_after": cost_after(steps, costs, lagrange.get("cost_limit"), args.over_limit_after),
            "return": returns[-1], "best": best_mean(returns, 1), "cost": costs[-1], "eval": float("nan"),
            "reached": reached,
            "sps": steps[-1] / wall, "wall_min": wall / 60}


def mean_std(values, digits: int = 1) -> str:
    """mean ± std over the runs that have a value; "(k of n)" when some do not."""
    values = np.asarray(values, float)
    known = int((~np.isnan(values)).sum())
    if known == 0:
        return "-"
    some = f" ({known} of {len(values)})" if known < len(values) else ""
    return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}{some}"


def env_tables(runs: list, args: Args) -> list:
    """Markdown lines for one env: a row per (exp_name, seed), a row per exp_name over its seeds, the published results."""
    with_cost = any(not np.isnan(r["cost"]) for r in runs)
    with_limit = any(not np.isnan(r["over_limit"]) for r in runs)
    over = [f"over limit after {args.over_limit_after}", f"cost after {args.over_limit_after}"]
    best = f"best {args.window}"
    header = ["exp_name", "seed", "steps", "return", best] + ["cost"] * with_cost + over * with_limit + ["eval return"]
    threshold = args.thresholds.get(runs[0]["env"])
    header += [f"steps to {threshold:g}"] if threshold is not None else []
    header += ["SPS", "wall (min)"]
    budget = max(r["budget"] for r in runs)
    at = [budget * k // args.curve_points for k in range(1, args.curve_points + 1)]
    header += [f"return{' (cost)' * with_cost} at {s}" for s in at]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in runs:
        steps, returns, cost_steps, costs = r["episodes"]
        curve = zip(moving_mean_at(steps, returns, at, r["window"]), moving_mean_at(cost_steps, costs, at, r["window"]))
        cells = [r["exp"], r["seed"], r["steps"], f"{r['return']:.1f}", f"{r['best']:.1f}"]
        cells += [f"{r['cost']:.1f}"] * with_cost
        cells += [f"{r['over_limit']:.2f}" if not np.isnan(r["over_limit"]) else "-",
                  f"{r['cost_after']:.1f}" if not np.isnan(r["cost_after"]) else "-"] * with_limit
        cells += [f"{r['eval']:.1f}" if not np.isnan(r["eval"]) else "-"]
        cells += [r["reached"] if r["reached"] is not None else "not reached"] * (threshold is not None)
        cells += [f"{r['sps']:.0f}", f"{r['wall_min']:.1f}"]
        reached_at = [s <= r["budget"] and s < r["steps"] + r["batch"] for s in at]  # "-" past a stopped run's end
        cells += [f"{ret:.1f}" + f" ({cost:.1f})" * with_cost if shown else "-" for shown, (ret, cost) in zip(reached_at, curve)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"| exp_name | seeds | steps | return | {best} | " + "cost | " * with_cost
              + f"{over[0]} | {over[1]} | " * with_limit + "eval return | SPS | wall (min) |",
              "|---|---|---|---|---|" + "---|" * (with_cost + 2 * with_limit) + "---|---|---|"]
    for exp in sorted({r["exp"] for r in runs}):
        group = [r for r in runs if r["exp"] == exp]
        cells = [exp, len(group), max(r["steps"] for r in group), mean_std([r["return"] for r in group]),
                 mean_std([r["best"] for r in group])]
        cells += [mean_std([r["cost"] for r in group])] * with_cost
        late = [mean_std([r["over_limit"] for r in group], digits=2), mean_std([r["cost_after"] for r in group])]
        cells += late * with_limit
        cells += [mean_std([r["eval"] for r in group])]
        cells += [f"{np.mean([r['sps'] for r in group]):.0f}", f"{np.mean([r['wall_min'] for r in group]):.1f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Published: " + ("; ".join(PUBLISHED[runs[0]["env"]]) if runs[0]["env"] in PUBLISHED else "none listed.")]
    return lines


def plot_env(runs: list, path: str, window: int):
    """Return (and cost, and λ) against steps: per exp_name, the mean over seeds ± one std of the moving mean
    return and cost, and of the Lagrange multiplier where the runs have one."""
    with_cost = any(not np.isnan(r["cost"]) for r in runs)
    with_multiplier = any(len(r["multiplier"][1]) for r in runs)
    panels = 1 + with_cost + with_multiplier
    fig, axes = plt.subplots(1, panels, figsize=(1 + 5 * panels, 4), squeeze=False)
    grid = np.linspace(0, max(r["steps"] for r in runs), 200)
    exps = sorted({r["exp"] for r in runs})
    colors = plt.get_cmap("tab10" if len(exps) <= 10 else "tab20").colors  # a color of its own per exp_name, up to 20
    for exp, color in zip(exps, colors * (len(exps) // len(colors) + 1)):
        group = [r for r in runs if r["exp"] == exp]
        curves = {"return": [moving_mean_at(r["episodes"][0], r["episodes"][1], grid, r["window"]) for r in group],
                  "cost": [moving_mean_at(r["episodes"][2], r["episodes"][3], grid, r["window"]) for r in group],
                  "λ": [np.interp(grid, *r["multiplier"], left=np.nan) if len(r["multiplier"][1]) else grid * np.nan
                        for r in group]}
        for name in curves:  # a run that stopped early has no values past its last step (not its last one, held)
            curves[name] = [np.where(grid <= r["steps"], curve, np.nan) for r, curve in zip(group, curves[name])]
        for ax, label in zip(axes[0], ["return", "cost", "λ"][:1 + with_cost] + ["λ"] * with_multiplier):
            values = np.array(curves[label])
            if np.isnan(values).all():
                continue
            with warnings.catch_warnings():  # before the first episode ends, a grid point has no value
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            ax.plot(grid, mean, color=color, label=f"{exp} ({len(group)} seed{'s' * (len(group) > 1)})")
            ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2)
            if label == "cost" and group[0]["cost_limit"] is not None:
                ax.axhline(group[0]["cost_limit"], color=color, linestyle="--", linewidth=1)
            ax.set_xlabel("environment steps")
            ax.set_ylabel("Lagrange multiplier λ" if label == "λ" else f"episodic {label} (mean of last {window} episodes)")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the curves, not on them
    fig.suptitle(runs[0]["env"])
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(args: Args):
    # Each run of runs/ (TensorBoard logs) is also written to curves/<run_name>.csv.gz; a run whose folder is gone
    # (large logs need not be kept) is read back from its CSV.
    curves_dir = os.path.join(args.results_dir, "curves")
    os.makedirs(curves_dir, exist_ok=True)
    loaded = {}
    for path in sorted(glob.glob(os.path.join(args.results_dir, "runs", "*", "args.yaml"))):
        run_args, series = read_event_run(os.path.dirname(path))
        name = os.path.basename(os.path.dirname(path))
        write_curve_csv(os.path.join(curves_dir, f"{name}.csv.gz"), run_args, series)
        loaded[name] = (run_args, series)
    for path in sorted(glob.glob(os.path.join(curves_dir, "*.csv.gz"))):
        loaded.setdefault(os.path.basename(path)[: -len(".csv.gz")], read_curve_csv(path))
    if not loaded:
        raise SystemExit(f"error: no run in {args.results_dir}/runs or curves; "
                         f"run benchmark/run.py --results-dir {args.results_dir} first")
    unfinished = sorted(name for name, (_, series) in loaded.items() if "charts/SPS" not in series)
    if unfinished:
        print(f"note: left out, no finished update yet: {', '.join(unfinished)}", file=sys.stderr)
    runs = [load_run(run_args, series, name, args) for name, (run_args, series) in loaded.items()
            if name not in unfinished]
    runs += [load_omnisafe_run(path, args) for path in glob.glob(os.path.join(args.results_dir, "omnisafe", "*", "seed-*",
                                                                          "progress.csv"))]
    runs.sort(key=lambda r: (r["env"], r["exp"], r["seed"]))
    lines = [f"# Results in {args.results_dir}", ""]
    for env in sorted({r["env"] for r in runs}):
        env_runs = [r for r in runs if r["env"] == env]
        plot_env(env_runs, os.path.join(args.results_dir, f"{env}.png"), args.window)
        lines += [f"## {env}", "", f"![{env}]({env}.png)", ""] + env_tables(env_runs, args) + [""]
    with open(os.path.join(args.results_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Args))
