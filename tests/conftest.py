import os
import subprocess
import sys

import gymnasium as gym
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder, so that runs/ and videos/ land there and not in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_script(in_tmp):
    """Runs `python <script> <args>` as a user would; returns the CompletedProcess."""

    def run(script, *args, timeout=180):
        return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=in_tmp)

    return run


def read_scalars(run_dir):
    """{tag: [values]} from the TensorBoard event files of one run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


class StepCost(gym.Wrapper):
    """Adds a per-step `info["cost"] = cost_of(obs)`, the way Safety-Gymnasium reports its costs."""

    def __init__(self, env, cost_of):
        super().__init__(env)
        self.cost_of = cost_of

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["cost"] = float(self.cost_of(obs))
        return obs, reward, terminated, truncated, info


def register_test_envs():
    """Fast envs with a cost (Safety-Gymnasium steps about 650 times a second here): CostPendulum-v1, cost 1 while the
    pendulum is more than 60° from upright (cos θ < 0.5); ConstantCostPendulum-v1, cost 1 at every step; and
    CostCartPole-v1, cost 1 while the cart is more than 0.1 from the centre."""
    if "CostPendulum-v1" not in gym.registry:
        gym.register("CostPendulum-v1", lambda **kwargs: StepCost(gym.make("Pendulum-v1", **kwargs),
                                                                  lambda obs: obs[0] < 0.5))
        gym.register("ConstantCostPendulum-v1", lambda **kwargs: StepCost(gym.make("Pendulum-v1", **kwargs),
                                                                          lambda obs: 1.0))
        gym.register("CostCartPole-v1", lambda **kwargs: StepCost(gym.make("CartPole-v1", **kwargs),
                                                                  lambda obs: abs(obs[0]) > 0.1))


register_test_envs()
