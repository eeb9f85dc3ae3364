"""Data-parallel training (torchrun, 2 CPU workers) and checkpoints: the workers stay identical, the averaged
quantities equal the single-process ones on the whole batch, and a resumed run continues exactly."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
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


def load(path):
    return torch.load(path, weights_only=False)


def test_two_workers_end_with_identical_parameters_and_resume_exactly_in_the_same_process(trpo, in_tmp):
    torchrun(trpo.__name__, "train", in_tmp)  # train() twice in each worker: the run, then its resumption
    rank0, rank1 = load(in_tmp / "train0.pt"), load(in_tmp / "train1.pt")
    assert rank0["global_step"] == rank1["global_step"] == 2400  # total_timesteps is global
    assert all(torch.equal(rank0["agent"][key], rank1["agent"][key]) for key in rank0["agent"])
    stats0, stats1 = rank0["obs_stats"], rank1["obs_stats"]  # the observation statistics too, all of them
    assert torch.equal(stats0["mean"], stats1["mean"]) and torch.equal(stats0["var"], stats1["var"])
    assert stats0["count"] == stats1["count"] == pytest.approx(2400 + 2 + 1e-4)  # every step and both resets
    (run_dir,) = (in_tmp / "runs").iterdir()  # only rank 0 logs and saves: one event file for each train() call
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2 and len(list(run_dir.glob("*.model"))) == 1
    assert len(read_scalars(run_dir)["charts/SPS"]) == 6  # the batch is global: 400 steps = 2 workers × 200
    for rank, uninterrupted in enumerate([rank0, rank1]):
        # from the checkpoint after 3 of the 6 iterations: every worker's own statistics and streams restored
        resumed = load(in_tmp / f"resume{rank}.pt")
        assert resumed["global_step"] == 2400
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
    torchrun(trpo.__name__, "averages", in_tmp)
    rank0, rank1 = load(in_tmp / "rank0.pt"), load(in_tmp / "rank1.pt")

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
    # every episode starts from the same state and ends at an iteration boundary (see conftest's FixedStart)
    env_id = "FixedStartPendulum-v1" if trpo is trpo_continuous else "FixedStartMountainCar-v0"
    settings = dict(env_id=env_id, total_timesteps=2400, num_envs=1, num_steps=400, critic_minibatch_size=100,
                    update_epochs=2, normalize_reward=True)
    return trpo.Args(**{**settings, **overrides})


def test_resumed_run_equals_the_uninterrupted_run(trpo, in_tmp):
    # A resume starts new episodes; these are the ones the uninterrupted run starts at the same step.
    uninterrupted = trpo.train(tiny(trpo, checkpoint_every=3))  # 6 iterations; the checkpoint holds the first 3
    final = {key: value.clone() for key, value in uninterrupted["agent"].state_dict().items()}
    checkpoint_path = in_tmp / "runs" / uninterrupted["run_name"] / "checkpoint.pt"
    assert torch.load(checkpoint_path, weights_only=True)["iteration"] == 3
    resumed = trpo.train(trpo.Args(resume=str(checkpoint_path)))
    assert resumed["run_name"] == uninterrupted["run_name"] and resumed["global_step"] == 2400
    assert all(torch.equal(final[key], value) for key, value in resumed["agent"].state_dict().items())
    steps = read_scalars(checkpoint_path.parent)["charts/SPS"]
    assert len(steps) == 6  # iterations 4 to 6 logged again in the same TensorBoard folder, not twice


def test_checkpoint_holds_plain_data_and_a_code_carrying_one_is_refused(trpo, run_script, in_tmp):
    result = trpo.train(tiny(trpo, total_timesteps=800, checkpoint_every=1))
    checkpoint = in_tmp / "runs" / result["run_name"] / "checkpoint.pt"
    torch.load(checkpoint, weights_only=True)  # tensors, numbers, strings, lists and dicts only
    evil = in_tmp / "evil.pt"
    torch.save({"format": f"{trpo.__name__} checkpoint", "payload": CreatesAFile(str(in_tmp / "pwned"))}, evil)
    done = run_script(f"{trpo.__name__}.py", "--resume", str(evil))
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and "is not a checkpoint written by" in lines[0], done.stderr
    assert not (in_tmp / "pwned").exists()


class CreatesAFile:
    """Unpickling this object calls open(path, "w"): the file appears if a loader runs the pickle's code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_args_yaml_of_a_resumed_run_holds_no_launch_arguments(trpo, in_tmp):
    first = trpo.train(tiny(trpo, total_timesteps=800, checkpoint_every=1, exp_name="again"))
    run_dir = in_tmp / "runs" / first["run_name"]
    trpo.train(trpo.Args(resume=str(run_dir / "checkpoint.pt")))
    saved = yaml.safe_load((run_dir / "args.yaml").read_text())
    assert not {"resume", "config", "eval_model"} & set(saved) and saved["exp_name"] == "again"
    args = trpo.parse_args(["--config", str(run_dir / "args.yaml"), "--exp-name", "new"])
    assert args.resume is None and args.total_timesteps == 800  # a new run with the same settings
    assert trpo.train(args)["run_name"] != first["run_name"]


def torchrun_worker_pid(torchrun_pid, rank):
    """The pid of the worker of that rank among the torchrun process's children."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except OSError:
            continue
        if parent == torchrun_pid and f"RANK={rank}".encode() in environment:
            return int(entry)
    raise AssertionError(f"no worker of rank {rank}")


def start_and_stop(command, cwd, wait_for_step, rank=None):
    """Starts a training command and, once it has printed a step ≥ wait_for_step, sends SIGTERM to it or, under
    torchrun, to the worker of that rank alone; returns (returncode, stdout, stderr)."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= wait_for_step:
            break
    os.kill(process.pid if rank is None else torchrun_worker_pid(process.pid, rank), signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "torchrun, SIGTERM to rank 1 only"])
def test_sigterm_writes_a_checkpoint_and_resume_continues_the_run(trpo, in_tmp, workers):
    launch = [sys.executable, os.path.join(ROOT, trpo.__name__ + ".py")]
    if workers > 1:
        launch[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(workers)]
    env_id = "Pendulum-v1" if trpo is trpo_continuous else "CartPole-v1"
    command = launch + ["--env-id", env_id, "--num-steps", "2000", "--num-envs", "1", "--critic-minibatch-size", "500",
                        "--total-timesteps", "10000000", "--exp-name", "long"]
    rank = 1 if workers > 1 else None
    returncode, stdout, stderr = start_and_stop(command, in_tmp, wait_for_step=4000, rank=rank)
    # every worker leaves the same iteration with exit code 130; torchrun reports its workers' failure
    assert "stopped by signal 15" in stdout and "continue with --resume" in stdout, stderr[-3000:]
    assert returncode == 130 if workers == 1 else stderr.count("exitcode  : 130") >= 1, stderr[-3000:]
    (checkpoint,) = in_tmp.glob("runs/*long*/checkpoint.pt")
    first = torch.load(checkpoint, weights_only=True)
    assert first["iteration"] >= 1 and first["global_step"] == 2000 * first["iteration"]
    assert len(first["workers"]) == workers

    returncode, stdout, stderr = start_and_stop(launch + ["--resume", str(checkpoint)], in_tmp,
                                                wait_for_step=first["global_step"] + 4000, rank=rank)
    assert "stopped by signal 15" in stdout, stderr[-3000:]
    second = torch.load(checkpoint, weights_only=True)
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
