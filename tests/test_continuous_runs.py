"""trpo_continuous.py as researchers run it: short training runs, logging, saving, evaluation, bad input."""
import math
import os

import numpy as np
import pytest
import torch
import yaml
from conftest import read_scalars

import trpo_continuous as trpo

SCRIPT = "trpo_continuous.py"
# Pendulum-v1 truncates every episode at 200 steps: a fast env whose episodes all end by the time limit.
TINY = dict(env_id="Pendulum-v1", total_timesteps=800, num_steps=400, num_minibatches=4, update_epochs=2,
            save_model=True, eval_episodes=2)
TAGS = ["charts/episodic_return", "charts/episodic_length", "charts/SPS", "losses/value_loss",
        "losses/explained_variance", "trpo/kl", "trpo/acceptance_step", "trpo/expected_improvement",
        "trpo/actual_improvement", "trpo/grad_norm", "trpo/xHx", "trpo/step_norm", "policy/entropy", "policy/std"]


def saved_parameters(result):
    return torch.load(result["model_path"], weights_only=True)["agent"]


def test_same_seed_gives_identical_parameters_and_another_seed_does_not(in_tmp):
    first = trpo.train(trpo.Args(exp_name="first", **TINY))
    second = trpo.train(trpo.Args(exp_name="second", **TINY))
    other = trpo.train(trpo.Args(exp_name="other", **{**TINY, "seed": 1}))
    a, b, c = saved_parameters(first), saved_parameters(second), saved_parameters(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first["global_step"] == 800 and math.isfinite(first["episodic_return"])


def test_run_writes_args_yaml_that_config_reads_back(in_tmp):
    result = trpo.train(trpo.Args(exp_name="cfg", **{**TINY, "target_kl": 0.005}))
    path = in_tmp / "runs" / result["run_name"] / "args.yaml"
    saved = yaml.safe_load(path.read_text())
    assert saved["target_kl"] == 0.005 and saved["batch_size"] == 400
    args = trpo.parse_args(["--config", str(path)])
    assert (args.env_id, args.target_kl, args.num_steps) == ("Pendulum-v1", 0.005, 400)
    args = trpo.parse_args(["--config", str(path), "--target-kl", "0.03"])  # a flag overrides the file
    assert (args.target_kl, args.num_steps) == (0.03, 400)


def test_evaluate_uses_the_saved_observation_statistics(in_tmp):
    result = trpo.train(trpo.Args(exp_name="eval", **TINY))
    agent, normalizer, checkpoint = trpo.load_model(result["model_path"])
    assert checkpoint["env_id"] == "Pendulum-v1" and normalizer.enabled
    assert not np.allclose(normalizer.stats.mean, 0.0)  # statistics learnt in training, not fresh ones
    evaluation = trpo.evaluate(result["model_path"], eval_episodes=2, seed=3)

    def replay(normalize):
        env = trpo.make_env("Pendulum-v1", 0, False, "")()
        obs, _ = env.reset(seed=3)
        total, episodes, returns = 0.0, 0, []
        while episodes < 2:
            x = torch.as_tensor(normalize(obs[None]).astype(np.float32))
            with torch.no_grad():
                action = agent.distribution(x).mean[0].numpy()
            obs, reward, terminated, truncated, _ = env.step(np.clip(action, -2.0, 2.0))
            total += reward
            if terminated or truncated:
                returns.append(total)
                total, episodes = 0.0, episodes + 1
                obs, _ = env.reset()
        return np.mean(returns)

    assert evaluation["mean_return"] == pytest.approx(replay(normalizer), rel=1e-5)
    assert evaluation["mean_return"] != pytest.approx(replay(lambda o: o), rel=1e-3)


def test_truncated_episodes_bootstrap_from_their_final_observation(in_tmp, monkeypatch):
    calls = []
    original = trpo.add_truncation_bootstrap

    def spy(rewards, truncated, final_values, gamma):
        calls.append((truncated.copy(), final_values.copy()))
        return original(rewards, truncated, final_values, gamma)

    monkeypatch.setattr(trpo, "add_truncation_bootstrap", spy)
    trpo.train(trpo.Args(exp_name="boot", **{**TINY, "save_model": False, "num_envs": 2, "num_steps": 200,
                                             "total_timesteps": 800}))
    assert len(calls) == 2  # Pendulum truncates at 200 steps: after step 200 and step 400, both envs
    for truncated, final_values in calls:
        assert truncated.all() and np.all(final_values != 0.0)


@pytest.mark.parametrize("env_id, steps, cost", [("SafetyPointGoal1-v0", 2000, True), ("HalfCheetah-v4", 2000, False)])
def test_smoke_run_logs_every_metric(in_tmp, env_id, steps, cost):
    result = trpo.train(trpo.Args(env_id=env_id, total_timesteps=steps, num_steps=1000, num_minibatches=10,
                                  update_epochs=2, cg_iters=5))
    assert result["global_step"] == steps and math.isfinite(result["episodic_return"])
    scalars = read_scalars(in_tmp / "runs" / result["run_name"])
    for tag in TAGS + (["charts/episodic_cost"] if cost else []):
        assert tag in scalars and all(math.isfinite(v) for v in scalars[tag]), tag
    assert ("charts/episodic_cost" in scalars) == cost
    assert math.isfinite(result["episodic_cost"]) == cost
    assert all(step in (0, *range(1, 16)) for step in scalars["trpo/acceptance_step"])


def test_async_envs_and_reward_normalization_run(in_tmp):
    result = trpo.train(trpo.Args(exp_name="async", **{**TINY, "num_envs": 2, "async_envs": True,
                                                          "normalize_reward": True, "num_steps": 200}))
    assert result["global_step"] == 800 and math.isfinite(result["eval_return"])


def test_command_line_trains_saves_and_evaluates(run_script, in_tmp):
    done = run_script(SCRIPT, "--env-id", "Pendulum-v1", "--total-timesteps", "400", "--num-steps", "200",
                      "--num-minibatches", "4", "--save-model", "--eval-episodes", "1", "--exp-name", "cli")
    assert done.returncode == 0, done.stderr
    assert "step 400/400 | SPS" in done.stdout and "evaluation over 1 episodes: return" in done.stdout
    (model,) = in_tmp.glob("runs/*/cli.model")
    again = run_script(SCRIPT, "--eval-model", str(model), "--env-id", "Pendulum-v1", "--eval-episodes", "1")
    assert again.returncode == 0 and "evaluation over 1 episodes" in again.stdout, again.stderr


@pytest.fixture(scope="module")
def pendulum_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return str(folder / trpo.train(trpo.Args(exp_name="m", **{**TINY, "total_timesteps": 400, "eval_episodes": 1}))["model_path"])
    finally:
        os.chdir(cwd)


BAD_INPUT = {
    "unknown env id": (["--env-id", "NoSuchEnv-v0"], "unknown env id"),
    "unknown safety env id": (["--env-id", "SafetyNoSuchTask-v0"], "unknown Safety-Gymnasium env id"),
    "discrete env": (["--env-id", "CartPole-v1", "--num-steps", "100", "--num-minibatches", "4"], "trpo_discrete.py"),
    "zero steps": (["--num-steps", "0"], "--num-steps must be positive"),
    "negative total": (["--total-timesteps", "-5"], "--total-timesteps must be positive"),
    "zero envs": (["--num-envs", "0"], "--num-envs must be positive"),
    "non-positive target kl": (["--target-kl", "0"], "--target-kl must be positive"),
    "batch smaller than total": (["--total-timesteps", "100"], "less than one batch"),
    "minibatches do not divide": (["--num-minibatches", "7"], "does not divide the batch"),
    "missing model": (["--eval-model", "missing.model"], "no model file"),
    "missing config": (["--config", "missing.yaml"], "no config file"),
    "video without moviepy or renderer": (["--env-id", "Pendulum-v1", "--capture-video"], "--capture-video"),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input_is_one_clear_line(run_script, name):
    args, message = BAD_INPUT[name]
    done = run_script(SCRIPT, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


def test_incompatible_or_corrupt_model_is_one_clear_line(run_script, in_tmp, pendulum_model):
    (in_tmp / "corrupt.model").write_bytes(b"not a model")
    for args, message in [(["--eval-model", pendulum_model, "--env-id", "HalfCheetah-v4"], "does not match"),
                          (["--eval-model", "corrupt.model"], "is not a model saved by trpo_continuous.py")]:
        done = run_script(SCRIPT, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and message in lines[0], done.stderr


def test_cuda_without_gpu_falls_back_with_a_warning(in_tmp, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = trpo.train(trpo.Args(exp_name="cuda", cuda=True, **{**TINY, "total_timesteps": 400, "save_model": False}))
    assert result["global_step"] == 400
    assert "no CUDA device is available; training on the CPU" in capsys.readouterr().err
