#!/usr/bin/env bash
# Creates the peers' virtual environments for `benchmark/speed.py --peers` (their versions conflict with ours):
#   benchmark/peers/.venv-sb3       SB3-contrib 2.9.2 (gymnasium 1.x, MuJoCo 3)
#   benchmark/peers/.venv-omnisafe  OmniSafe 0.5.0 (gymnasium 0.28.1, MuJoCo 2.3.3, safety-gymnasium 1.0.0)
# torch==2.13.0 is the local CPU build; another pin pulls gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
PIP="-m pip install -q --disable-pip-version-check"

[ -x .venv-sb3/bin/python ] || "$PYTHON" -m venv .venv-sb3
.venv-sb3/bin/python $PIP torch==2.13.0 sb3-contrib==2.9.2 stable-baselines3==2.9.2 gymnasium==1.4.0 \
  mujoco==3.3.7 imageio==2.38.1 packaging==26.4

# OmniSafe 0.5.0 asks for safety-gymnasium, whose pygame==2.1.0 pin does not build on Python 3.11, and for
# packages of algorithms we do not run: install it with --no-deps and what `import omnisafe` really needs.
[ -x .venv-omnisafe/bin/python ] || "$PYTHON" -m venv .venv-omnisafe
.venv-omnisafe/bin/python $PIP torch==2.13.0 gymnasium==0.28.1 mujoco==2.3.3 numpy==1.26.4 pyyaml==6.0.4 \
  tensorboard==2.21.0 xmltodict==1.0.4 imageio==2.38.1 jinja2==3.1.6 pettingzoo==1.23.1 farama-notifications==0.0.4 \
  rich==15.0.0 wandb==0.31.0 moviepy==2.2.1 matplotlib==3.11.2 gdown==6.5.1 pandas==2.0.3 seaborn==0.13.2
.venv-omnisafe/bin/python $PIP --no-deps omnisafe==0.5.0 safety-gymnasium==1.0.0 gymnasium-robotics==1.2.2
