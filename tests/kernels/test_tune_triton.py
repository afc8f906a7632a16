"""scripts/tune_triton.py: the sweep runs end to end (Triton's interpreter, so without a GPU) and
never picks a candidate whose outputs differ from the shipped tiles'."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "scripts" / "tune_triton.py"


@pytest.mark.slow
def test_the_sweep_runs_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": "kernels"}
    run = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(("| fwd", "| bwd"))]
    assert [r.split(" | ")[0] for r in rows] == ["| fwd", "| bwd_dkdv", "| bwd_dq"]
    assert "WRONG" not in run.stdout and "skipped" not in run.stdout


def test_a_candidate_with_other_outputs_is_reported_and_never_chosen(monkeypatch, capsys, load_script):
    tune = load_script("tune_triton")
    out = torch.zeros(4)

    def fake_call(kernel, shape, dtype, device):
        def launch():  # a "kernel" whose result depends on its tiles: 64-row tiles are wrong
            out.fill_(1.0 if tune.tk.block_config(kernel, 64, dtype)["BLOCK_M"] == 64 else 0.0)

        return launch, (out,)

    times = {16: 5.0, 32: 9.0, 64: 0.1}  # the wrong candidate is the fastest
    monkeypatch.setattr(tune, "kernel_call", fake_call)
    monkeypatch.setattr(tune, "timed", lambda fn, device: times.get(tune.tk.block_config("fwd", 64, 0)["BLOCK_M"], 7.0))
    configs = [dict(BLOCK_M=m, BLOCK_N=32, num_warps=4, num_stages=2) for m in (16, 32, 64)]
    result = tune.sweep("fwd", (1, 1, 8, 64), torch.bfloat16, "cpu", configs)
    assert result["best"][0]["BLOCK_M"] == 16 and result["best"][1] == 5.0  # not the wrong 64
    assert result["shipped"][1] == 7.0
    assert "WRONG fwd 64x32" in capsys.readouterr().out
