"""``python -m flash_sigmoid.check`` on this machine's device: passes on correct paths, fails
(exit status 1) on a wrong one, and reports a Triton fallback as a failure."""

import subprocess
import sys

import flash_sigmoid
import torch
from flash_sigmoid import check, cpu


def test_check_passes_here_and_prints_both_tables():
    run = subprocess.run(
        [sys.executable, "-m", "flash_sigmoid.check", "--quick"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "| cpu | bf16 | 1, 2, 17, 203, 128 |" in run.stdout and "WRONG" not in run.stdout
    assert "| sdpa | 32 x 6 x 197 x 64 | 1.00 | 1.00 |" in run.stdout
    assert "10 of 10 correctness cases" in run.stdout


def test_a_wrong_backend_fails_the_check(monkeypatch, capsys):
    forward = cpu.forward
    monkeypatch.setattr(cpu, "forward", lambda *a, **k: forward(*a, **k) * 1.01)  # 1% off
    monkeypatch.setattr(
        check,
        "bench_shape",
        lambda *a, **k: {"sdpa": dict.fromkeys(("fwd", "fwd+bwd", "fwd_ms", "fwd+bwd_ms", "mem"), 1.0)},
    )
    assert check.main(["--quick", "--device", "cpu"]) == 1
    assert "WRONG" in capsys.readouterr().out


def test_a_triton_fallback_counts_as_a_failure(monkeypatch):
    # Triton without a GPU or interpreter cannot launch: the call falls back (correctly) but the
    # check is about the kernel, so it reports the row as failed, naming the error.
    monkeypatch.setattr(flash_sigmoid, "_triton_failure", [])
    monkeypatch.setattr(flash_sigmoid, "pick_backend", lambda q, backend=None: backend)
    row = check.check_case((1, 2, 17, 17, 64), "fp32", "triton", "cpu")
    assert not row["ok"] and row["note"].startswith("fell back: ")
    assert max(row["kernel"]) < 1e-5  # the blocked path gave the right answer meanwhile
    assert torch.isfinite(torch.tensor(row["kernel"])).all()


def test_every_backend_the_check_runs_is_one_the_device_accepts():
    # The first GPU run of the check stopped here: it asked for the blocked CPU path on CUDA
    # tensors, which pick_backend refuses. pick_backend reads only ``q.is_cuda``, so a stand-in
    # for a CUDA tensor proves the CUDA list on a machine without one.
    class OnCuda:
        is_cuda = True

    for device, q in (("cuda", OnCuda()), ("cpu", torch.zeros(1))):
        for backend in check.backends(device):
            assert flash_sigmoid.pick_backend(q, backend) == backend  # raises on a refused pair
    assert check.backends("cuda")[1:] == ["triton"] and set(check.methods("cpu")) == {"sdpa", "reference", "cpu"}
