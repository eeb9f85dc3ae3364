"""torchrun (2 CPU workers: rollout workers and one learner) and checkpoints: the learner's update is one process's
on the gathered batch, the workers stay identical, two collectives an iteration, a lost worker does not lose the run,
and a resumed run goes on from its checkpoint."""
import ast
import inspect
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


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The folder of tests/distributed_worker.py's one torchrun launch (2 workers), whose learner is killed once."""
    out_dir = tmp_path_factory.mktemp("torchrun")
    # rank 0, the learner, killed (trpo_discrete.py restarts by the same lines; LOST_RANK=1 passes too)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "--max-restarts", "1", os.path.join(ROOT, "tests", "distributed_worker.py"), str(out_dir)],
                          capture_output=True, text=True, timeout=300, cwd=out_dir, env=os.environ | {"LOST_RANK": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out_dir


def load(path):
    return torch.load(path, weights_only=False)


def test_two_workers_and_one_learner_compute_what_one_process_computes(launched):
    # each script: train() twice in each worker, the run, then its resumption
    for trpo, env_id in [(trpo_continuous, "Pendulum-v1"), (trpo_discrete, "CartPole-v1")]:
        prefix = f"{launched}/{trpo.__name__}_"  # the worker's files of this script
        for name in ["train", "resume"]:
            rank0, rank1 = load(prefix + f"{name}0.pt"), load(prefix + f"{name}1.pt")
            assert rank0["global_step"] == rank1["global_step"] == 2400  # total_timesteps is global
            assert all(torch.equal(rank0["agent"][key], rank1["agent"][key]) for key in rank0["agent"])
            stats0, stats1 = rank0["obs_rms"], rank1["obs_rms"]  # the observation statistics too, all of them
            assert torch.equal(stats0["mean"], stats1["mean"]) and torch.equal(stats0["var"], stats1["var"])
        assert load(prefix + "train0.pt")["obs_rms"]["count"] == pytest.approx(2400 + 2 + 1e-4)  # every step, 2 resets
        (run_dir,) = launched.glob(f"runs/{env_id}__*")  # only rank 0 logs and saves: one event file a train() call
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2 and len(list(run_dir.glob("*.model"))) == 1
        assert len(read_scalars(run_dir)["charts/SPS"]) == 6  # 6 iterations of 400 steps = 2 workers × 200
        # the learner's last update, replayed in this process on the batch it gathered: the same parameters, bit for
        # bit, and every worker ended on them
        recorded = load(prefix + "update.pt")
        batch, args = recorded["inputs"][0], next(a for a in recorded["inputs"] if isinstance(a, trpo.Args))
        assert len(batch["obs"]) == 400  # both workers' 200 steps
        n_out = (batch["means"] if trpo is trpo_continuous else batch["logits"]).shape[1]  # act_dim, or the actions
        agent = trpo.Agent(batch["obs"].shape[1], n_out, args)
        agent.load_state_dict(recorded["agent"])
        optimizers = [torch.optim.Adam(agent.critic.parameters(), lr=args.critic_lr, fused=True)]
        optimizers[0].load_state_dict(recorded["optimizers"][0])
        torch.set_rng_state(recorded["rng"])
        trpo.update(agent, optimizers, *recorded["inputs"])
        assert not torch.equal(recorded["after"]["critic.0.weight"], recorded["agent"]["critic.0.weight"])  # it moved
        for key, value in agent.state_dict().items():
            assert torch.equal(value, recorded["after"][key]), key
            assert torch.equal(value, load(prefix + "train0.pt")["agent"][key]), key
        # two collectives an iteration (gather the batch, send the state back), besides start-up (the run's name, the
        # initial weights) and the stop (a barrier)
        for rank in (0, 1):
            calls = load(prefix + f"calls{rank}.pt")
            assert len(calls) <= 2 * 6 + 3, calls


def test_a_lost_learner_restarts_and_the_run_goes_on_from_its_checkpoint(launched):
    (run_dir,) = (launched / "lost" / "runs").iterdir()  # the first attempt's run, and no other
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # both attempts logged: a worker was lost
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["global_step"] == 2400
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("charts/SPS")] == list(range(400, 2401, 400))  # no gap, once


def test_the_mathematics_calls_no_collective():
    """Every torch.distributed call is in the section of rollout workers and one learner, after the mathematics."""
    for module in (trpo_continuous, trpo_discrete):
        source = inspect.getsource(module)
        section = source.index("# === Rollout workers and one learner")
        for node in ast.walk(ast.parse(source[:section])):
            if isinstance(node, ast.FunctionDef):
                local = {arg.arg for arg in node.args.args} | {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                                                              and isinstance(n.ctx, ast.Store)}
                uses = [n for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                        and n.value.id == "dist" and "dist" not in local]
                assert not uses, f"{module.__name__}.{node.name} calls torch.distributed"


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
