"""Both scripts as researchers run them: short training runs, logging, saving, evaluation, bad input."""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import read_scalars

import trpo_continuous
import trpo_discrete


@dataclass
class Script:
    module: object
    file: str
    tiny_env: str  # truncates every episode at 200 steps, fast: a tiny run whose episodes all end by time limit
    other_kind_env: str  # an env of the other action type
    other_script: str
    tags: list


COMMON_TAGS = ["charts/episodic_return", "charts/episodic_length", "charts/SPS", "losses/value_loss",
               "losses/explained_variance", "trpo/kl", "trpo/acceptance_step", "trpo/expected_improvement",
               "trpo/actual_improvement", "trpo/grad_norm", "trpo/xHx", "trpo/step_norm", "policy/entropy"]
CONTINUOUS = Script(trpo_continuous, "trpo_continuous.py", "Pendulum-v1", "CartPole-v1", "trpo_discrete.py",
                    COMMON_TAGS + ["policy/std"])
DISCRETE = Script(trpo_discrete, "trpo_discrete.py", "MountainCar-v0", "Pendulum-v1", "trpo_continuous.py", COMMON_TAGS)


@pytest.fixture(params=[CONTINUOUS, DISCRETE], ids=["continuous", "discrete"])
def script(request):
    return request.param


def tiny(script, **overrides):
    settings = dict(env_id=script.tiny_env, total_timesteps=800, num_steps=400, critic_minibatch_size=100, num_envs=1,
                    update_epochs=2, save_model=True, eval_episodes=2)
    return script.module.Args(**{**settings, **overrides})


def saved_parameters(result):
    return torch.load(result["model_path"], weights_only=True)["agent"]


def test_same_seed_gives_identical_parameters_and_another_seed_does_not(script, in_tmp):
    first = script.module.train(tiny(script, exp_name="first"))
    second = script.module.train(tiny(script, exp_name="second"))
    other = script.module.train(tiny(script, exp_name="other", seed=1))
    a, b, c = saved_parameters(first), saved_parameters(second), saved_parameters(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first["global_step"] == 800 and math.isfinite(first["episodic_return"])


def test_run_writes_args_yaml_that_config_reads_back(script, in_tmp):
    result = script.module.train(tiny(script, exp_name="cfg", target_kl=0.005))
    path = in_tmp / "runs" / result["run_name"] / "args.yaml"
    saved = yaml.safe_load(path.read_text())
    assert saved["target_kl"] == 0.005 and saved["num_steps"] == 400
    args = script.module.parse_args(["--config", str(path)])
    assert (args.env_id, args.target_kl, args.num_steps) == (script.tiny_env, 0.005, 400)
    args = script.module.parse_args(["--config", str(path), "--target-kl", "0.03"])  # a flag overrides the file
    assert (args.target_kl, args.num_steps) == (0.03, 400)


def test_omnisafe_preset_loads_omnisafe_settings():
    """benchmark/presets/omnisafe.yaml is one flag away from OmniSafe's TRPO: every key an Args field, its values
    OmniSafe's (target_kl in our summed units for 6 action dimensions)."""
    preset = Path(__file__).parent.parent / "benchmark" / "presets" / "omnisafe.yaml"
    args = trpo_continuous.parse_args(["--config", str(preset), "--env-id", "Pendulum-v1"])
    assert (args.num_envs, args.num_steps, args.critic_minibatch_size, args.update_epochs) == (1, 20000, 128, 10)
    assert (args.target_kl, args.cg_iters, args.backtrack_iters, args.weight_init) == (0.06, 15, 15, "pytorch")
    assert not args.normalize_reward and not args.anneal_lr and args.log_std_init == 0.0
    assert args.hidden_sizes == (64, 64) and args.env_id == "Pendulum-v1"


def deterministic_action(script, agent, x, env):
    dist = agent.distribution(x)
    if script is CONTINUOUS:
        return np.clip(dist.mean[0].numpy(), env.action_space.low, env.action_space.high)
    return dist.probs.argmax(-1)[0].item()


def test_evaluate_uses_the_saved_observation_statistics(script, in_tmp):
    result = script.module.train(tiny(script, exp_name="eval"))
    agent, normalizer, checkpoint = script.module.load_model(result["model_path"])
    assert checkpoint["env_id"] == script.tiny_env and normalizer.enabled
    assert not np.allclose(normalizer.stats.mean, 0.0)  # statistics learnt in training, not fresh ones
    evaluation = script.module.evaluate(result["model_path"], eval_episodes=2, seed=3)

    def replay(normalize):
        env = script.module.make_env(script.tiny_env, 0, False, "")()
        obs, _ = env.reset(seed=3)
        total, returns = 0.0, []
        while len(returns) < 2:
            with torch.no_grad():
                action = deterministic_action(script, agent, torch.as_tensor(normalize(obs[None]).astype(np.float32)), env)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                returns.append(total)
                total = 0.0
                obs, _ = env.reset()
        return np.mean(returns)

    assert evaluation["mean_return"] == pytest.approx(replay(normalizer), rel=1e-5)
    if script is CONTINUOUS:  # (MountainCar's return is -200 whatever the policy does in 2 episodes)
        assert evaluation["mean_return"] != pytest.approx(replay(lambda o: o), rel=1e-3)


def test_truncated_episodes_bootstrap_from_their_final_observation(script, in_tmp, monkeypatch):
    calls = []
    original = script.module.add_truncation_bootstrap

    def spy(rewards, truncated, final_values, gamma):
        calls.append((truncated.copy(), final_values.copy()))
        return original(rewards, truncated, final_values, gamma)

    monkeypatch.setattr(script.module, "add_truncation_bootstrap", spy)
    script.module.train(tiny(script, exp_name="boot", save_model=False, num_envs=2, num_steps=200))
    assert len(calls) == 2  # both envs truncate at 200 steps: after step 200 and after step 400
    for truncated, final_values in calls:
        assert truncated.all() and np.all(final_values != 0.0)


SMOKE = [(CONTINUOUS, "SafetyPointGoal1-v0", True), (CONTINUOUS, "HalfCheetah-v4", False), (DISCRETE, "CartPole-v1", False)]


@pytest.mark.parametrize("script, env_id, cost", SMOKE, ids=[env for _, env, _ in SMOKE])
def test_smoke_run_logs_every_metric(in_tmp, script, env_id, cost):
    result = script.module.train(script.module.Args(env_id=env_id, total_timesteps=2000, num_envs=1, num_steps=1000,
                                                    critic_minibatch_size=100, update_epochs=2, cg_iters=5))
    assert result["global_step"] == 2000 and math.isfinite(result["episodic_return"])
    scalars = read_scalars(in_tmp / "runs" / result["run_name"])
    for tag in script.tags + (["charts/episodic_cost"] if cost else []):
        assert tag in scalars and all(math.isfinite(v) for v in scalars[tag]), tag
    assert ("charts/episodic_cost" in scalars) == cost
    assert math.isfinite(result["episodic_cost"]) == cost
    assert all(step in range(16) for step in scalars["trpo/acceptance_step"])


def test_async_envs_and_reward_normalization_run(script, in_tmp):
    result = script.module.train(tiny(script, exp_name="async", num_envs=2, async_envs=True, normalize_reward=True,
                                      num_steps=200))
    assert result["global_step"] == 800 and math.isfinite(result["eval_return"])


def test_command_line_trains_saves_and_evaluates(script, run_script, in_tmp):
    done = run_script(script.file, "--env-id", script.tiny_env, "--total-timesteps", "400", "--num-steps", "200",
                      "--num-envs", "1", "--critic-minibatch-size", "50", "--save-model", "--eval-episodes", "1",
                      "--exp-name", "cli")
    assert done.returncode == 0, done.stderr
    assert "step 400/400 | SPS" in done.stdout and "evaluation over 1 episodes: return" in done.stdout
    (model,) = in_tmp.glob("runs/*/cli.model")
    again = run_script(script.file, "--eval-model", str(model), "--env-id", script.tiny_env, "--eval-episodes", "1")
    assert again.returncode == 0 and "evaluation over 1 episodes" in again.stdout, again.stderr


def bad_inputs(script):
    return {
        "unknown env id": (["--env-id", "NoSuchEnv-v0"], "unknown env id"),
        "other action type": (["--env-id", script.other_kind_env, "--num-steps", "100"],
                              script.other_script),
        "zero steps": (["--num-steps", "0"], "--num-steps must be positive"),
        "negative total": (["--total-timesteps", "-5"], "--total-timesteps must be positive"),
        "zero envs": (["--num-envs", "0"], "--num-envs must be positive"),
        "non-positive target kl": (["--target-kl", "0"], "--target-kl must be positive"),
        "batch larger than total": (["--total-timesteps", "100"], "less than one batch"),
        "unknown env id before sizes": (["--env-id", "NoSuchEnv-v9", "--total-timesteps", "2048"], "unknown env id"),
        "other action type before sizes": (["--env-id", script.other_kind_env, "--num-steps", "0"], script.other_script),
        "zero critic minibatch": (["--critic-minibatch-size", "0"], "--critic-minibatch-size must be positive"),
        "cost limit on an env without cost": (["--env-id", script.tiny_env, "--cost-limit", "25", "--num-steps", "200"],
                                              "reports no per-step info['cost']"),
        # (no env of Gymnasium's own reports a cost: for trpo_discrete.py that is the more basic problem)
        "negative cost limit": (["--cost-limit", "-1"], "--cost-limit must be non-negative" if script is CONTINUOUS
                                else "reports no per-step info['cost']"),
        "zero hidden size": (["--hidden-sizes", "64", "0"], "--hidden-sizes needs one or more positive sizes"),
        "missing model": (["--eval-model", "missing.model"], "no model file"),
        "track without wandb": (["--env-id", script.tiny_env, "--track"], "--track needs wandb"),  # (not installed)
        "missing config": (["--config", "missing.yaml"], "no config file"),
        # this machine has neither moviepy nor a renderer for these envs (pygame)
        "video without moviepy or renderer": (["--env-id", script.tiny_env, "--capture-video"], "--capture-video"),
    }


BAD_CASES = list(bad_inputs(CONTINUOUS))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_clear_line(script, run_script, case):
    args, message = bad_inputs(script)[case]
    done = run_script(script.file, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


@pytest.mark.parametrize("script, env_id, message", [
    (CONTINUOUS, "SafetyNoSuchTask-v0", "unknown Safety-Gymnasium env id"),
    (DISCRETE, "SafetyPointGoal1-v0", "use trpo_continuous.py")])
def test_safety_ids_get_one_clear_line(run_script, script, env_id, message):
    done = run_script(script.file, "--env-id", env_id)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and message in lines[0], done.stderr


def test_incompatible_or_corrupt_model_is_one_clear_line(script, run_script, in_tmp):
    model = script.module.train(tiny(script, exp_name="m", total_timesteps=400, eval_episodes=1))["model_path"]
    (in_tmp / "corrupt.model").write_bytes(b"not a model")
    wrong_env = "Acrobot-v1" if script is DISCRETE else "HalfCheetah-v4"
    for args, message in [(["--eval-model", model, "--env-id", wrong_env], "does not match"),
                          (["--eval-model", "corrupt.model"], f"is not a model saved by {script.file}"),
                          (["--eval-model", model, "--eval-episodes", "0", "--env-id", script.tiny_env],
                           "--eval-episodes must be positive")]:
        done = run_script(script.file, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and message in lines[0], done.stderr


def test_cuda_without_gpu_falls_back_with_a_warning(script, in_tmp, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = script.module.train(tiny(script, exp_name="cuda", cuda=True, total_timesteps=400, save_model=False))
    assert result["global_step"] == 400
    assert "no CUDA device is available; training on the CPU" in capsys.readouterr().err


def test_discrete_learns_cartpole(in_tmp):
    result = trpo_discrete.train(trpo_discrete.Args(total_timesteps=40_000))
    assert result["episodic_return"] >= 195  # a uniformly random policy averages about 22


def test_eval_model_without_env_id_evaluates_on_the_models_own_env(script, run_script, in_tmp):
    model = script.module.train(tiny(script, exp_name="own", total_timesteps=400, eval_episodes=1))["model_path"]
    done = run_script(script.file, "--eval-model", model, "--eval-episodes", "1")  # not the script's default env
    assert done.returncode == 0 and "evaluation over 1 episodes" in done.stdout, done.stderr


def test_bad_input_writes_nothing(script, run_script, in_tmp):
    for args, _ in bad_inputs(script).values():
        run_script(script.file, *args)
    assert not (in_tmp / "runs").exists() and not (in_tmp / "videos").exists()


def test_critic_minibatches_of_a_size_take_any_batch(script, in_tmp, monkeypatch):
    sizes = []
    original = torch.Tensor.tensor_split

    def spy(self, sections, *args, **kwargs):
        parts = original(self, sections, *args, **kwargs)
        sizes.append([len(part) for part in parts])
        return parts

    monkeypatch.setattr(torch.Tensor, "tensor_split", spy)
    result = script.module.train(tiny(script, num_steps=300, total_timesteps=300, critic_minibatch_size=128,
                                      save_model=False))  # 300 is no multiple of 128
    assert result["global_step"] == 300 and sizes == [[100, 100, 100]] * 2  # 2 passes of ceil(300 / 128) = 3
    full_batch = script.module.num_critic_minibatches(300, 10_000)
    assert full_batch == 1 and script.module.num_critic_minibatches(256, 128) == 2


def test_envs_of_every_worker_start_different_episodes(script):
    # 2 workers × 2 envs: worker r's env i is seeded first_env_seed(seed, r, 2) + i (seed + r + i repeated one)
    first_obs = []
    for rank in (0, 1):
        envs = script.module.make_vector_env(script.module.Args(env_id="Pendulum-v1" if script is CONTINUOUS
                                                                else "CartPole-v1", num_envs=2), "")
        first_obs += list(envs.reset(seed=script.module.first_env_seed(0, rank, 2))[0])
        envs.close()
    assert len({tuple(obs) for obs in first_obs}) == 4


def test_device_and_backend_follow_the_cuda_flag_and_the_local_rank(script, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a machine with GPUs
    device = script.module.choose_device(True, local_rank=1)
    assert device == torch.device("cuda", 1) and script.module.process_group_backend(device) == "nccl"
    device = script.module.choose_device(False, local_rank=1)
    assert device == torch.device("cpu") and script.module.process_group_backend(device) == "gloo"
