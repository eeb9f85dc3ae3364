import os
import subprocess
import sys

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

    def run(script, *args, timeout=120):
        return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=in_tmp)

    return run


def read_scalars(run_dir):
    """{tag: [values]} from the TensorBoard event file of one run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
