"""Both scripts as researchers run them: short training runs, logging, saving, evaluation, bad input."""
import dataclasses
import importlib.util
import math
import re
import shutil
import subprocess
import sys
import warnings
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
    tiny_env: str  # every episode ends by the time limit at 200 steps, fast
    other_kind_env: str  # an env of the other action type
    other_script: str
    tags: list


COMMON_TAGS = ["charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate",
               "losses/value_loss", "losses/explained_variance", "trpo/kl", "trpo/acceptance_step",
               "trpo/expected_improvement", "trpo/actual_improvement", "trpo/grad_norm", "trpo/xHx", "trpo/step_norm",
               "trpo/rejected_not_finite", "trpo/rejected_no_improvement", "trpo/rejected_kl", "policy/entropy"]
CONTINUOUS = Script(trpo_continuous, "trpo_continuous.py", "Pendulum-v1", "CartPole-v1", "trpo_discrete.py",
                    COMMON_TAGS + ["policy/std", "trpo/rejected_cost"])
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
    assert not {"resume", "config", "eval_model"} & set(saved)  # how the run was launched is not how it trains
    args = script.module.parse_args(["--config", str(path)])
    assert (args.env_id, args.target_kl, args.num_steps, args.hidden_sizes) == (script.tiny_env, 0.005, 400, (64, 64))
    args = script.module.parse_args(["--config", str(path), "--target-kl", "0.03", "--exp-name", "new"])
    assert (args.target_kl, args.num_steps, args.exp_name) == (0.03, 400, "new")  # flags override the file
    assert script.module.train(args)["run_name"] != result["run_name"]  # a new run with the same settings


def test_omnisafe_preset_loads_omnisafe_settings():
    """benchmark/presets/omnisafe.yaml is one flag away from OmniSafe's TRPO: every key an Args field, its values
    OmniSafe's (target_kl in our summed units for 6 action dimensions)."""
    preset = Path(__file__).parent.parent / "benchmark" / "presets" / "omnisafe.yaml"
    args = trpo_continuous.parse_args(["--config", str(preset), "--env-id", "Pendulum-v1"])
    assert (args.num_envs, args.num_steps, args.critic_minibatch_size, args.update_epochs) == (1, 20000, 128, 10)
    assert (args.target_kl, args.cg_iters, args.backtrack_iters, args.weight_init) == (0.06, 15, 15, "pytorch")
    assert not args.normalize_reward and not args.anneal_lr and args.log_std_init == 0.0
    assert args.hidden_sizes == (64, 64) and args.env_id == "Pendulum-v1"


def test_trpopid_preset_is_the_omnisafe_preset_with_omnisafes_pid_lagrangian():
    """benchmark/presets/omnisafe_trpopid.yaml, the recommended safe-RL configuration: the TRPO preset at OmniSafe's
    per-dimension target_kl, and only the TRPOPID fields beside it (λ₀ 0.001, J_c over 50 episodes, Â_c centred)."""
    presets = Path(__file__).parent.parent / "benchmark" / "presets"
    trpopid = trpo_continuous.parse_args(["--config", str(presets / "omnisafe_trpopid.yaml"), "--env-id", "Pendulum-v1"])
    trpo = trpo_continuous.parse_args(["--config", str(presets / "omnisafe.yaml"), "--env-id", "Pendulum-v1",
                                       "--target-kl", "0.01"])
    differ = {name for name, value in dataclasses.asdict(trpopid).items() if value != getattr(trpo, name)}
    assert differ == {"config", "cost_limit", "lagrange_update", "lagrange_multiplier_init", "cost_window",
                      "standardize_cost_advantages"}
    assert (trpopid.cost_limit, trpopid.lagrange_update, trpopid.lagrange_multiplier_init) == (25.0, "pid", 0.001)
    assert trpopid.cost_window == 50 and not trpopid.standardize_cost_advantages and trpopid.pid_max is None


def test_evaluate_uses_the_saved_observation_statistics(script, in_tmp):
    # CartPole for the discrete policy: its return depends on the actions (MountainCar's is −200 for most policies)
    env_id = script.tiny_env if script is CONTINUOUS else "CartPole-v1"
    result = script.module.train(tiny(script, exp_name="eval", env_id=env_id, total_timesteps=2000))
    checkpoint = torch.load(result["model_path"], weights_only=True)
    assert checkpoint["args"]["env_id"] == env_id
    assert not np.allclose(checkpoint["obs_rms"]["mean"].numpy(), 0.0)  # statistics learnt in training
    agent, obs_rms = result["agent"], result["obs_rms"]
    evaluation = script.module.evaluate(result["model_path"], eval_episodes=2, seed=3)

    def replay(normalize):  # the deterministic policy, written out
        env = script.module.make_env(env_id, 0, False, "")()
        obs, _ = env.reset(seed=3)
        total, returns = 0.0, []
        while len(returns) < 2:
            with torch.no_grad():
                output = (agent.actor_mean if script is CONTINUOUS else agent.actor)(torch.as_tensor(normalize(obs[None])))
            action = np.clip(output[0].numpy(), -2, 2) if script is CONTINUOUS else output[0].argmax().item()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                returns.append(total)
                total = 0.0
                obs, _ = env.reset()
        return np.mean(returns)

    assert evaluation["mean_return"] == pytest.approx(replay(lambda o: script.module.normalize_obs(o, obs_rms)), rel=1e-5)
    # and not the raw observations' (an untrained policy's returns differ by little: the same tolerance)
    assert evaluation["mean_return"] != pytest.approx(replay(lambda o: o.astype(np.float32)), rel=1e-5)


def test_observation_statistics_move_at_every_step(script, in_tmp, monkeypatch):
    counts, original = [], script.module.normalize_obs
    monkeypatch.setattr(script.module, "normalize_obs",
                        lambda obs, stats: counts.append(stats.count) or original(obs, stats))
    result = script.module.train(tiny(script, save_model=False, num_envs=2, num_steps=100, total_timesteps=400))
    assert result["obs_rms"].count == pytest.approx(1e-4 + 2 + 400)  # the 2 first observations, then every step's
    assert len(set(counts)) > 190  # each step's observations normalized by the statistics of all before them


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


SMOKE = [(CONTINUOUS, "SafetyPointGoal1-v0", 0.0), (CONTINUOUS, "HalfCheetah-v4", None),
         (DISCRETE, "CartPole-v1", None)]  # (script, env, --cost-limit)
COST_TAGS = ["charts/episodic_cost", "charts/lagrange_multiplier", "losses/cost_value_loss",
             "losses/cost_explained_variance"]


@pytest.mark.parametrize("script, env_id, cost_limit", SMOKE, ids=[env for _, env, _ in SMOKE])
def test_smoke_run_logs_every_metric(in_tmp, script, env_id, cost_limit, monkeypatch):
    """SafetyPointGoal1-v0 itself with TRPO-Lagrangian (limit 0), a MuJoCo task, and a discrete one."""
    monkeypatch.setattr(script.module, "explained_variance", lambda values, returns: 1.0)  # n̄ exists, and is logged
    cost = cost_limit is not None
    # one iteration, one episode: a Safety-Gymnasium reset rebuilds the model, which takes seconds
    result = script.module.train(script.module.Args(env_id=env_id, total_timesteps=1000, num_envs=1, num_steps=1000,
                                                    critic_minibatch_size=100, update_epochs=2, cg_iters=5,
                                                    **({"cost_limit": cost_limit} if cost else {})))
    assert result["global_step"] == 1000 and math.isfinite(result["episodic_return"])
    scalars = read_scalars(in_tmp / "runs" / result["run_name"])
    for tag in script.tags + (COST_TAGS if cost else []):
        assert tag in scalars and all(math.isfinite(v) for v in scalars[tag]), tag
    assert ("charts/episodic_cost" in scalars) == cost
    assert math.isfinite(result.get("episodic_cost", math.nan)) == cost  # (trpo_discrete.py logs the cost only)
    assert all(step in range(16) for step in scalars["trpo/acceptance_step"])
    if cost:  # a random PointGoal1 policy touches hazards in every episode: λ rises from 0
        assert result["lagrange_multiplier"] > 0


def test_async_envs_and_reward_normalization_run(script, in_tmp):
    result = script.module.train(tiny(script, exp_name="async", num_envs=2, async_envs=True, normalize_reward=True,
                                      num_steps=200))
    assert result["global_step"] == 800 and math.isfinite(result["eval_return"])


def test_command_line_trains_saves_and_evaluates(script, run_script, in_tmp, capsys):
    done = run_script(script.file, "--env-id", script.tiny_env, "--total-timesteps", "400", "--num-steps", "200",
                      "--num-envs", "1", "--critic-minibatch-size", "50", "--save-model", "--eval-episodes", "1",
                      "--exp-name", "cli")
    assert done.returncode == 0, done.stderr
    assert "step 400/400 | SPS" in done.stdout and "evaluation over 1 episodes: return" in done.stdout
    (model,) = in_tmp.glob("runs/*/cli.model")
    capsys.readouterr()
    script.module.main(["--eval-model", str(model), "--eval-episodes", "1"])  # on the model's own env
    assert "evaluation over 1 episodes" in capsys.readouterr().out
    (in_tmp / "bad.yaml").write_text("target_kl: small\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = main_error(script, ["--config", "bad.yaml"])
    assert error == "error: bad.yaml: target_kl = 'small': str is neither float or int" and not caught  # nor tyro's


def bad_inputs(script):
    return {
        "unknown env id": (["--env-id", "NoSuchEnv-v0"], "unknown env id"),
        "other action type": (["--env-id", script.other_kind_env, "--num-steps", "100"], script.other_script),
        "zero steps": (["--num-steps", "0"], "--num-steps must be positive"),
        "negative total": (["--total-timesteps", "-5"], "--total-timesteps must be positive"),
        "zero envs": (["--num-envs", "0"], "--num-envs must be positive"),
        "non-positive target kl": (["--target-kl", "0"], "--target-kl must be positive"),
        "gamma above 1": (["--gamma", "1.5"], "--gamma must be in [0, 1]"),
        "batch larger than total": (["--total-timesteps", "100"], "less than one batch"),
        "unknown env id before sizes": (["--env-id", "NoSuchEnv-v9", "--total-timesteps", "2048"], "unknown env id"),
        "a package the env needs missing": (["--env-id", "LunarLander-v2"], "Box2D is not installed"),
        "observations without a shape": (["--env-id", "Blackjack-v1"], "has a Tuple observation space; flatten it"),
        "other action type before sizes": (["--env-id", script.other_kind_env, "--num-steps", "0"], script.other_script),
        "zero critic minibatch": (["--critic-minibatch-size", "0"], "--critic-minibatch-size must be positive"),
        "zero hidden size": (["--hidden-sizes", "64", "0"], "--hidden-sizes must be positive sizes"),
        "missing model": (["--eval-model", "missing.model"], "no checkpoint or model at"),
        "missing checkpoint": (["--resume", "missing.pt"], "no checkpoint or model at"),
        "missing config": (["--config", "missing.yaml"], "no config file"),
        "track without wandb": (["--env-id", script.tiny_env, "--track"], "--track needs wandb"),
        "video without moviepy": (["--env-id", script.tiny_env, "--capture-video"], "--capture-video needs moviepy"),
    }


def main_error(script, argv):
    """main(argv) in this process: the message it exits with, as the command line prints it after `error: `."""
    with pytest.raises(SystemExit) as exit_info:
        script.module.main(argv)
    return str(exit_info.value.code)


@pytest.mark.parametrize("case", list(bad_inputs(CONTINUOUS)))
def test_bad_input_is_one_clear_line_and_writes_nothing(script, case, in_tmp, monkeypatch):
    real_find_spec = importlib.util.find_spec  # as on a machine without wandb and moviepy, whatever this one has
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "moviepy")
                        else real_find_spec(name, *a))
    args, message = bad_inputs(script)[case]
    error = main_error(script, args)
    assert error.startswith("error: ") and message in error and "\n" not in error, error
    assert list(in_tmp.iterdir()) == []  # no runs/, no videos/


def test_cost_flags_on_an_env_without_cost_and_safety_ids_get_one_clear_line(in_tmp):
    for flags in (["--cost-limit", "25"], ["--use-cost-critic"], ["--penalty-coef", "1"]):
        error = main_error(CONTINUOUS, ["--env-id", "Pendulum-v1", *flags])
        assert "Pendulum-v1 reports no per-step info['cost']" in error, error
    assert "--cost-limit must be non-negative" in main_error(CONTINUOUS, ["--cost-limit", "-1"])
    assert "--cost-line-search tests the cost" in main_error(CONTINUOUS, ["--cost-line-search"])
    assert "unknown Safety-Gymnasium env id" in main_error(CONTINUOUS, ["--env-id", "SafetyNoSuchTask-v0"])
    assert "use trpo_continuous.py" in main_error(DISCRETE, ["--env-id", "SafetyPointGoal1-v0"])
    assert list(in_tmp.iterdir()) == []


def test_incompatible_or_corrupt_model_is_one_clear_line(script, in_tmp):
    model = script.module.train(tiny(script, exp_name="m", total_timesteps=400, eval_episodes=1))["model_path"]
    (in_tmp / "corrupt.model").write_bytes(b"not a model")
    other_model = in_tmp / "other.model"
    foreign = torch.load(model, weights_only=True)
    torch.save({**foreign, "format": "another script's"}, other_model)
    wrong_env = "Acrobot-v1" if script is DISCRETE else "HalfCheetah-v4"
    for args, message in [(["--eval-model", model, "--env-id", wrong_env], "does not match"),
                          (["--eval-model", "corrupt.model"], f"is not a checkpoint or model of {script.file}"),
                          (["--eval-model", str(other_model)], f"is not a checkpoint or model of {script.file}"),
                          (["--eval-model", model, "--eval-episodes", "0"], "--eval-episodes must be positive")]:
        error = main_error(script, args)
        assert error.startswith("error: ") and message in error and "\n" not in error, error


WRONG_TYPES = {  # each kind of value that its flag would refuse: (field, value) for each script
    "a word for a number": [("target_kl", "small")] * 2,
    "a number for a list": [("hidden_sizes", 64)] * 2,
    "a list of the wrong length or items": [("std_schedule", [0.5]), ("hidden_sizes", [64, "big"])],
    "a fraction for an integer": [("num_steps", 64.5)] * 2,
    "true for an integer": [("seed", True)] * 2,
    "a word outside the choices": [("activation", "sigmoid")] * 2,
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_a_value_of_the_wrong_type_is_one_line_from_a_yaml_a_checkpoint_or_python(script, case, in_tmp):
    name, value = WRONG_TYPES[case][script is DISCRETE]
    wanted = f"{name} = "
    (in_tmp / "bad.yaml").write_text(yaml.safe_dump({name: value}))
    torch.save({"format": script.module.__name__, "args": {name: value}}, in_tmp / "bad.pt")  # its saved arguments
    for argv in (["--config", "bad.yaml"], ["--resume", "bad.pt"], ["--eval-model", "bad.pt"]):
        error = main_error(script, argv)
        assert error.startswith("error: ") and wanted in error and "\n" not in error, error
    assert main_error(script, ["--config", "bad.yaml"]).startswith(f"error: bad.yaml: {wanted}")
    with pytest.raises(script.module.UsageError, match=f"^{wanted}"):  # train(Args(...)) and the like
        script.module.Args(**{name: value})
    assert sorted(path.name for path in in_tmp.iterdir()) == ["bad.pt", "bad.yaml"]  # no runs/


def test_evaluate_from_python_refuses_arguments_of_the_wrong_type(script, in_tmp):
    for arguments, wanted in [(dict(eval_episodes="10"), "eval_episodes = '10': str is not an instance of int"),
                              (dict(env_id=3), "env_id = 3: int did not match any element in the union"),
                              (dict(seed=0.5), "seed = 0.5: float is not an instance of int")]:
        with pytest.raises(script.module.UsageError, match=re.escape(wanted)):
            script.module.evaluate("no.model", **arguments)


def test_every_preset_loads_and_trains(in_tmp):
    for preset in sorted((Path(__file__).parent.parent / "benchmark" / "presets").glob("*.yaml")):
        args = trpo_continuous.parse_args(["--config", str(preset), "--env-id", "CostPendulum-v1", "--num-steps", "200",
                                           "--total-timesteps", "200", "--critic-minibatch-size", "50"])
        assert trpo_continuous.train(args)["global_step"] == 200, preset.name


def test_cuda_without_gpu_falls_back_with_a_warning(script, in_tmp, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = script.module.train(tiny(script, exp_name="cuda", cuda=True, total_timesteps=400, save_model=False))
    assert result["global_step"] == 400
    assert "no CUDA device is available; training on the CPU" in capsys.readouterr().err


def test_device_follows_the_cuda_flag_and_the_local_rank(script, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a machine with GPUs
    monkeypatch.setenv("LOCAL_RANK", "1")  # (torchrun's, for each worker)
    assert script.module.start_workers(True) == (1, 0, torch.device("cuda", 1))  # alone: 1 worker, rank 0
    assert script.module.start_workers(False) == (1, 0, torch.device("cpu"))


def test_discrete_learns_cartpole(in_tmp):
    # 12 updates of 2 envs × 512 steps: seeds 0 to 3 stand at 157 to 254 there, here
    result = trpo_discrete.train(trpo_discrete.Args(total_timesteps=12_288))
    assert result["episodic_return"] >= 100  # a uniformly random policy averages about 22


def test_continuous_learns_inverted_pendulum(in_tmp):
    # 20 updates of 16 envs × 64 steps, whatever the default batch
    args = trpo_continuous.Args(env_id="InvertedPendulum-v4", total_timesteps=20480, num_steps=64)
    result = trpo_continuous.train(args)
    assert result["episodic_return"] >= 50  # a random policy lasts about 5 steps; a surrogate of the wrong sign, 4


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


def test_report_regenerates_a_committed_report_from_its_curves_alone(tmp_path):
    results = Path(__file__).resolve().parent.parent / "benchmark" / "results" / "discrete"
    shutil.copytree(results / "curves", tmp_path / "curves")  # a fresh clone has no runs/ (ignored, large)
    completed = subprocess.run([sys.executable, str(results.parent.parent / "report.py"), str(tmp_path)],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    committed = (results / "report.md").read_text().splitlines()[1:]  # the first line names the folder
    assert (tmp_path / "report.md").read_text().splitlines()[1:] == committed
