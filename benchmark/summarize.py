"""Summarize finished runs from their TensorBoard logs: one markdown row per run, then mean ± std over the
seeds of each env and exp_name.

    python benchmark/summarize.py 'runs/CartPole-v1__*' --threshold 475
    python benchmark/summarize.py 'runs/SafetyPointGoal1-v0__*' --at 100000 250000 500000 1000000

return / cost: the mean over the last `window` episodes of the run (the window of the console and of
train()); eval: the mean return of the deterministic evaluation that `--save-model` runs; steps to
threshold: the first step at which the moving mean return reaches `threshold`; `--at`: the moving mean
return (and cost) of the episodes finished by each of those steps, a coarse learning curve."""
import glob
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import tyro
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@dataclass
class Args:
    runs: tyro.conf.Positional[Tuple[str, ...]]
    """run folders (runs/<run_name>), or glob patterns of them"""
    threshold: Optional[float] = None
    """report the first step at which the moving mean return reaches this value"""
    at: Tuple[int, ...] = ()
    """steps at which to report the moving mean return (and cost)"""
    window: int = 20
    """the number of most recent episodes averaged"""


def scalars(accumulator: EventAccumulator, tag: str):
    """(steps, values) of one TensorBoard tag; empty arrays when the run did not log it."""
    if tag not in accumulator.Tags()["scalars"]:
        return np.array([], int), np.array([])
    events = accumulator.Scalars(tag)
    return np.array([e.step for e in events]), np.array([e.value for e in events])


def moving_mean_at(steps: np.ndarray, values: np.ndarray, step: int, window: int) -> float:
    """The mean of the last `window` values logged at or before `step` (nan when there are none)."""
    finished = values[steps <= step]
    return finished[-window:].mean() if len(finished) else float("nan")


def summarize(run_dir: str, args: Args) -> dict:
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    with open(os.path.join(run_dir, "args.yaml")) as f:
        run_args = yaml.safe_load(f)
    steps, returns = scalars(accumulator, "charts/episodic_return")
    cost_steps, costs = scalars(accumulator, "charts/episodic_cost")
    sps_steps, sps = scalars(accumulator, "charts/SPS")
    _, eval_returns = scalars(accumulator, "eval/episodic_return")
    if len(sps_steps) == 0:
        raise SystemExit(f"error: {run_dir} has no finished update (no charts/SPS); is it a run folder?")
    reached = None
    if args.threshold is not None and len(returns) >= args.window:
        moving = np.convolve(returns, np.ones(args.window) / args.window, mode="valid")
        above = np.flatnonzero(moving >= args.threshold)
        reached = int(steps[above[0] + args.window - 1]) if len(above) else None
    wall_seconds = accumulator.Scalars("charts/SPS")[-1].wall_time - accumulator.FirstEventTimestamp()
    return {"env": run_args["env_id"], "exp": run_args["exp_name"], "seed": run_args["seed"], "steps": int(sps_steps[-1]),
            "return": moving_mean_at(steps, returns, sps_steps[-1], args.window),
            "cost": moving_mean_at(cost_steps, costs, sps_steps[-1], args.window),
            "eval": eval_returns.mean() if len(eval_returns) else float("nan"),
            "reached": reached, "sps": sps[-1], "wall_min": wall_seconds / 60,
            "curve": [(moving_mean_at(steps, returns, s, args.window), moving_mean_at(cost_steps, costs, s, args.window))
                      for s in args.at]}


def main(args: Args):
    run_dirs = sorted({d for pattern in args.runs for d in glob.glob(pattern) if os.path.isdir(d)})
    if not run_dirs:
        raise SystemExit(f"error: no run folder matches {' '.join(args.runs)}")
    rows = [summarize(d, args) for d in run_dirs]
    with_cost = any(not np.isnan(r["cost"]) for r in rows)
    header = ["env", "exp_name", "seed", "steps", "return"] + ["cost"] * with_cost + ["eval return"]
    header += ["steps to threshold"] * (args.threshold is not None) + ["SPS", "wall (min)"]
    header += [f"return{' (cost)' * with_cost} at {s}" for s in args.at]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = [r["env"], r["exp"], r["seed"], r["steps"], f"{r['return']:.1f}"] + [f"{r['cost']:.1f}"] * with_cost
        cells += [f"{r['eval']:.1f}"] + [r["reached"] if r["reached"] is not None else "not reached"] * (args.threshold is not None)
        cells += [f"{r['sps']:.0f}", f"{r['wall_min']:.1f}"]
        cells += [f"{ret:.1f}" + f" ({cost:.1f})" * with_cost for ret, cost in r["curve"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for env, exp in sorted({(r["env"], r["exp"]) for r in rows}):
        group = [r for r in rows if (r["env"], r["exp"]) == (env, exp)]
        returns, costs = np.array([r["return"] for r in group]), np.array([r["cost"] for r in group])
        line = f"{env}, {exp}: {len(group)} run(s), return {returns.mean():.1f} ± {returns.std():.1f}"
        if not np.isnan(costs).all():
            line += f", cost {costs.mean():.1f} ± {costs.std():.1f}"
        print(line)


if __name__ == "__main__":
    main(tyro.cli(Args))
