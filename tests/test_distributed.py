"""Data-parallel training (torchrun, 2 CPU workers) and checkpoints: the workers stay identical, the averaged
quantities equal the single-process ones on the whole batch, and a resumed run goes on from its checkpoint."""
import os
import subprocess
import sys

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


def load(path):
    return torch.load(path, weights_only=False)


def test_two_workers_stay_identical_through_a_run_and_its_resumption(trpo, in_tmp):
    torchrun(trpo.__name__, "train", in_tmp)  # train() twice in each worker: the run, then its resumption
    for name in ["train", "resume"]:
        rank0, rank1 = load(in_tmp / f"{name}0.pt"), load(in_tmp / f"{name}1.pt")
        assert rank0["global_step"] == rank1["global_step"] == 2400  # total_timesteps is global
        assert all(torch.equal(rank0["agent"][key], rank1["agent"][key]) for key in rank0["agent"])
        stats0, stats1 = rank0["obs_rms"], rank1["obs_rms"]  # the observation statistics too, all of them
        assert torch.equal(stats0["mean"], stats1["mean"]) and torch.equal(stats0["var"], stats1["var"])
    assert load(in_tmp / "train0.pt")["obs_rms"]["count"] == pytest.approx(2400 + 2 + 1e-4)  # every step, 2 resets
    (run_dir,) = (in_tmp / "runs").iterdir()  # only rank 0 logs and saves: one event file for each train() call
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2 and len(list(run_dir.glob("*.model"))) == 1
    assert len(read_scalars(run_dir)["charts/SPS"]) == 6  # 6 iterations of 400 steps = 2 workers × 200


def test_averages_over_two_half_batches_equal_the_whole_batch(trpo, in_tmp):
    torch.manual_seed(1)
    obs_dim, n_out = 3, (2 if trpo is trpo_continuous else 4)
    obs = torch.randn(64, obs_dim)
    torch.manual_seed(0)
    agent = trpo.Agent(obs_dim, n_out, trpo.Args(hidden_sizes=(8,)))
    with torch.no_grad():
        actions = agent.distribution(obs * 3).sample()
        logprobs = agent.distribution(obs).log_prob(actions)
    batch = {"obs": obs, "actions": actions, "logprobs": logprobs, "advantages": torch.randn(64), "n_out": n_out,
             "vector": torch.randn(sum(p.numel() for p in agent.actor_parameters())), "raw_obs": np.random.rand(40, 3)}
    torch.save(batch, in_tmp / "batch.pt")
    torchrun(trpo.__name__, "averages", in_tmp)
    rank0, rank1 = load(in_tmp / "rank0.pt"), load(in_tmp / "rank1.pt")

    whole_fvp = trpo.fisher_vector_product(agent, obs, 0.1)(batch["vector"])
    whole_update = trpo.trpo_policy_update(agent, obs, actions, logprobs, batch["advantages"],
                                           trpo.Args(target_kl=0.01, cg_iters=10))
    expected = trpo.RunningMeanStd((3,))
    for rows in [np.arange(10), np.arange(10, 40, 2), np.arange(11, 40, 2)]:
        expected.update(batch["raw_obs"][rows])
    for worker in (rank0, rank1):
        assert torch.allclose(worker["fvp"], whole_fvp, atol=1e-6)
        assert worker["update"]["acceptance_step"] == whole_update["acceptance_step"] > 0
        assert worker["fit"] == pytest.approx(trpo.explained_variance(batch["advantages"].flip(0), batch["advantages"]))
        assert worker["update"]["kl"] == pytest.approx(whole_update["kl"], rel=1e-4)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(worker["policy"], agent.actor_parameters()))
        assert np.allclose(worker["obs_rms"]["mean"], expected.mean) and np.allclose(worker["obs_rms"]["var"], expected.var)
        assert worker["obs_rms"]["count"] == pytest.approx(expected.count)
        assert worker["costs"] == [1.0, 2.0, 3.0, 10.0]  # every worker's, in rank order, on every worker
    assert torch.allclose(torch.cat([rank0["standardized"], rank1["standardized"]]),
                          trpo.standardize(batch["advantages"]), atol=1e-6)
    if trpo is trpo_continuous:  # the cost advantages, centred only
        assert torch.allclose(torch.cat([rank0["centred"], rank1["centred"]]),
                              batch["advantages"] - batch["advantages"].mean(), atol=1e-6)


def tiny(trpo, **overrides):
    settings = dict(env_id="Pendulum-v1" if trpo is trpo_continuous else "CartPole-v1", total_timesteps=1200,
                    num_envs=1, num_steps=400, critic_minibatch_size=100, update_epochs=2, normalize_reward=True)
    return trpo.Args(**{**settings, **overrides})


def test_resume_restores_what_the_checkpoint_holds_and_goes_on_in_the_same_run(trpo, in_tmp, monkeypatch):
    saved_states, original = [], trpo.save_checkpoint

    def keep_a_copy(state, path):
        original(state, path)
        saved_states.append(torch.load(path, weights_only=True))

    monkeypatch.setattr(trpo, "save_checkpoint", keep_a_copy)
    first = trpo.train(tiny(trpo, checkpoint_every=2))  # checkpoints after iterations 2 and 3 (the last)
    path = in_tmp / "runs" / first["run_name"] / "checkpoint.pt"
    middle, last = saved_states
    assert (middle["iteration"], middle["global_step"], last["iteration"]) == (2, 800, 3)
    # resumed from the last checkpoint, nothing is left to train: the run's state is the checkpoint's, exactly
    done = trpo.train(trpo.Args(resume=str(path)))
    assert done["global_step"] == 1200 and done["run_name"] == first["run_name"]
    assert all(torch.equal(value, last["agent"][key]) for key, value in done["agent"].state_dict().items())
    assert np.array_equal(done["obs_rms"].mean, last["obs_rms"]["mean"]) and done["obs_rms"].count == last["obs_rms"]["count"]
    # resumed from the middle one: the last iteration again, in the same folder, with the optimizer's state
    torch.save(middle, path)
    again = trpo.train(trpo.Args(resume=str(path)))
    assert again["global_step"] == 1200 and again["run_name"] == first["run_name"]
    resumed = saved_states[-1]
    adam_steps = {state["step"].item() for state in resumed["optimizers"][0]["state"].values()}
    assert adam_steps == {3 * 2 * 4}  # 3 iterations × 2 passes × 4 minibatches: 2 iterations saved, 1 new
    assert resumed["return_rms"]["count"] > middle["return_rms"]["count"] > 0  # the reward scale went on too
    assert len(read_scalars(path.parent)["charts/SPS"]) == 3  # iteration 3 logged again, not twice
    assert len(list(in_tmp.glob("runs/*"))) == 1


def test_checkpoint_holds_plain_data_and_a_code_carrying_one_is_refused(trpo, in_tmp):
    result = trpo.train(tiny(trpo, total_timesteps=400))
    torch.load(in_tmp / "runs" / result["run_name"] / "checkpoint.pt", weights_only=True)  # no pickled objects
    evil = in_tmp / "evil.pt"
    torch.save({"format": trpo.__name__, "payload": CreatesAFile(str(in_tmp / "pwned"))}, evil)
    with pytest.raises(SystemExit) as exit_info:
        trpo.main(["--resume", str(evil)])
    assert "is not a checkpoint or model of" in str(exit_info.value.code)
    assert not (in_tmp / "pwned").exists()


class CreatesAFile:
    """Unpickling this object calls open(path, "w"): the file appears if a loader runs the pickle's code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_corrupt_or_foreign_checkpoint_is_one_clear_line_and_left_alone(in_tmp):
    model = trpo_continuous.train(tiny(trpo_continuous, total_timesteps=400))["run_name"]
    (in_tmp / "corrupt.pt").write_bytes(b"not a checkpoint")
    for path, script in [(in_tmp / "corrupt.pt", trpo_continuous), (in_tmp / "runs" / model / "checkpoint.pt",
                                                                     trpo_discrete)]:  # the other script's
        before = path.read_bytes()
        with pytest.raises(SystemExit) as exit_info:
            script.main(["--resume", str(path)])
        error = str(exit_info.value.code)
        assert error.startswith("error: ") and f"is not a checkpoint or model of {script.__name__}.py" in error
        assert "\n" not in error and path.read_bytes() == before
