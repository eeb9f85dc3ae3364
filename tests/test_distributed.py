"""Data-parallel training (torchrun, 2 CPU workers) and checkpoints: the workers stay identical, the averaged
quantities equal the single-process ones on the whole batch, and a resumed run continues exactly."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, read_scalars

import trpo_continuous
import trpo_discrete


@pytest.fixture(params=[trpo_continuous, trpo_discrete], ids=["continuous", "discrete"])
def trpo(request):
    return request.param


def torchrun(script_name, mode, out_dir, timeout=240):
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           os.path.join(ROOT, "tests", "distributed_worker.py"), script_name, mode, str(out_dir)],
                          capture_output=True, text=True, timeout=timeout, cwd=out_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out_dir / f"{mode if mode != 'averages' else 'rank'}{rank}.pt", weights_only=False)
            for rank in (0, 1)]


def test_two_workers_end_with_identical_parameters_and_resume_exactly(trpo, in_tmp):
    rank0, rank1 = torchrun(trpo.__name__, "train", in_tmp)
    assert rank0["global_step"] == rank1["global_step"] == 2400  # total_timesteps is global
    assert all(torch.equal(rank0["agent"][key], rank1["agent"][key]) for key in rank0["agent"])
    stats0, stats1 = rank0["obs_stats"], rank1["obs_stats"]  # the observation statistics too, all of them
    assert torch.equal(stats0["mean"], stats1["mean"]) and torch.equal(stats0["var"], stats1["var"])
    assert stats0["count"] == stats1["count"] == pytest.approx(2400 + 2 + 1e-4)  # every step and both resets
    (run_dir,) = (in_tmp / "runs").iterdir()  # only rank 0 logs and saves
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1 and len(list(run_dir.glob("*.model"))) == 1
    assert len(read_scalars(run_dir)["charts/SPS"]) == 6  # the batch is global: 400 steps = 2 workers × 200
    for uninterrupted, resumed in zip([rank0, rank1], torchrun(trpo.__name__, "resume", in_tmp)):
        # from the checkpoint after 3 of the 6 iterations: every worker's own envs and streams restored
        assert all(torch.equal(value, resumed["agent"][key]) for key, value in uninterrupted["agent"].items())


def test_averages_over_two_half_batches_equal_the_whole_batch(trpo, in_tmp):
    torch.manual_seed(1)
    obs_dim, n_out = 3, (2 if trpo is trpo_continuous else 4)
    obs = torch.randn(64, obs_dim)
    torch.manual_seed(0)
    agent = trpo.Agent(obs_dim, n_out, hidden_sizes=(8,))
    with torch.no_grad():
        dist = agent.distribution(obs * 3)
        actions = dist.sample()
        logprobs = agent.distribution(obs).log_prob(actions)
    batch = {"obs": obs, "actions": actions, "logprobs": logprobs, "advantages": torch.randn(64), "n_out": n_out,
             "vector": torch.randn(sum(p.numel() for p in agent.actor_parameters())), "raw_obs": np.random.rand(40, 3)}
    torch.save(batch, in_tmp / "batch.pt")
    rank0, rank1 = torchrun(trpo.__name__, "averages", in_tmp)

    whole_fvp = trpo.fisher_vector_product(agent, obs, 0.1)(batch["vector"])
    whole_update = trpo.trpo_policy_update(agent, obs, actions, logprobs, batch["advantages"],
                                           trpo.Args(target_kl=0.01, cg_iters=10))
    for worker in (rank0, rank1):
        assert torch.allclose(worker["fvp"], whole_fvp, atol=1e-6)
        assert worker["update"]["acceptance_step"] == whole_update["acceptance_step"] > 0
        assert worker["update"]["kl"] == pytest.approx(whole_update["kl"], rel=1e-4)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(worker["policy"], agent.actor_parameters()))
        assert worker["mean_cost"] == pytest.approx(4.0)  # (1 + 2 + 3 + 10) / 4, not the mean of the means
    assert torch.allclose(torch.cat([rank0["standardized"], rank1["standardized"]]),
                          trpo.standardize(batch["advantages"]), atol=1e-6)
    expected = trpo.RunningMeanStd((3,))
    for rows in [np.arange(10), np.arange(10, 40, 2), np.arange(11, 40, 2)]:
        expected.update(batch["raw_obs"][rows])
    for worker in (rank0, rank1):
        mean, var, count = worker["obs_stats"]
        assert np.allclose(mean.numpy(), expected.mean) and np.allclose(var.numpy(), expected.var)
        assert count == pytest.approx(expected.count)


def tiny(trpo, **overrides):
    env_id = "Pendulum-v1" if trpo is trpo_continuous else "CartPole-v1"
    settings = dict(env_id=env_id, total_timesteps=2400, num_envs=1, num_steps=400, num_minibatches=4, update_epochs=2,
                    normalize_reward=True)
    return trpo.Args(**{**settings, **overrides})


def test_resumed_run_equals_the_uninterrupted_run(trpo, in_tmp):
    # classic-control envs pickle by value, so the checkpoint holds their exact state
    uninterrupted = trpo.train(tiny(trpo, checkpoint_every=3))  # 6 iterations; the checkpoint holds the first 3
    final = {key: value.clone() for key, value in uninterrupted["agent"].state_dict().items()}
    checkpoint_path = in_tmp / "runs" / uninterrupted["run_name"] / "checkpoint.pt"
    assert torch.load(checkpoint_path, weights_only=False)["iteration"] == 3
    resumed = trpo.train(trpo.Args(resume=str(checkpoint_path)))
    assert resumed["run_name"] == uninterrupted["run_name"] and resumed["global_step"] == 2400
    assert all(torch.equal(final[key], value) for key, value in resumed["agent"].state_dict().items())
    steps = read_scalars(checkpoint_path.parent)["charts/SPS"]
    assert len(steps) == 6  # iterations 4 to 6 logged again in the same TensorBoard folder, not twice


def start_and_stop(command, cwd, wait_for_step):
    """Starts a training command, sends SIGTERM once it has printed a step ≥ wait_for_step; returns its stdout."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= wait_for_step:
            break
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    return stdout


def test_sigterm_writes_a_checkpoint_and_resume_continues_the_run(trpo, in_tmp):
    script = os.path.join(ROOT, trpo.__name__ + ".py")
    env_id = "Pendulum-v1" if trpo is trpo_continuous else "CartPole-v1"
    command = [sys.executable, script, "--env-id", env_id, "--num-steps", "2000", "--num-envs", "1",
               "--num-minibatches", "4", "--total-timesteps", "10000000", "--exp-name", "long"]
    stdout = start_and_stop(command, in_tmp, wait_for_step=4000)
    assert "continue with --resume" in stdout
    (checkpoint,) = in_tmp.glob("runs/*long*/checkpoint.pt")
    first = torch.load(checkpoint, weights_only=False)
    assert first["iteration"] >= 1 and first["global_step"] == 2000 * first["iteration"]

    stdout = start_and_stop([sys.executable, script, "--resume", str(checkpoint)], in_tmp,
                            wait_for_step=first["global_step"] + 4000)
    second = torch.load(checkpoint, weights_only=False)
    assert second["run_name"] == first["run_name"] and second["global_step"] > first["global_step"]
    assert len(list(in_tmp.glob("runs/*"))) == 1  # the same run folder


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_corrupt_or_incompatible_checkpoint_is_one_clear_line_and_left_alone(run_script, in_tmp, content):
    path = in_tmp / "checkpoint.pt"
    if content is None:  # a model file is not a checkpoint
        result = trpo_continuous.train(tiny(trpo_continuous, total_timesteps=400, num_steps=400, save_model=True,
                                            eval_episodes=1))
        path.write_bytes(open(result["model_path"], "rb").read())
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    for script in ["trpo_continuous.py", "trpo_discrete.py"]:
        done = run_script(script, "--resume", str(path))
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and "is not a checkpoint written by" in lines[0], done.stderr
    assert path.read_bytes() == before
    done = run_script("trpo_continuous.py", "--resume", "missing.pt")
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        "error: no checkpoint at 'missing.pt' (runs write runs/<run_name>/checkpoint.pt, see --checkpoint-every)"]
