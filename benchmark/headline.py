"""The README's figure: the recommended safe-RL setting beside OmniSafe's own runs, from committed curves alone.

    python benchmark/headline.py      # writes benchmark/results/headline.png

SafetyPointGoal1-v0 at 2M steps, cost limit 25, 3 seeds each: trpo_continuous.py at OmniSafe's TRPOPID
configuration (results/point2m, exp_name pid_centred: the preset presets/omnisafe_trpopid.yaml with
--target-kl 0.02, run at --cg-damping 0.1) and OmniSafe 0.5.0's TRPOPID run here (results/point2m/omnisafe)."""
import glob
import os

import report

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(HERE, "results", "point2m")
args = report.Args(results_dir=FOLDER)
runs = []
for path in sorted(glob.glob(os.path.join(FOLDER, "curves", "SafetyPointGoal1-v0__pid_centred__*.csv.gz"))):
    run = report.load_run(*report.read_curve_csv(path), path, args)
    runs.append(run | {"exp": "trpo_continuous.py, omnisafe_trpopid.yaml"})
for path in sorted(glob.glob(os.path.join(FOLDER, "omnisafe", "TRPOPID-*", "*", "progress.csv"))):
    runs.append(report.load_omnisafe_run(path, args) | {"exp": "OmniSafe 0.5.0 TRPOPID"})
report.plot_env(runs, os.path.join(HERE, "results", "headline.png"), args.window)
print(f"{len(runs)} runs drawn into {os.path.join(HERE, 'results', 'headline.png')}")
