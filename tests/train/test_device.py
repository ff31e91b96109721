"""``device = "auto"``: CUDA (bf16 where supported, else fp16), then Apple MPS, then CPU."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from curatune.errors import CuratuneError
from curatune.train.device import DeviceChoice, choose_device


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="a GPU is visible here")
def test_auto_without_a_gpu_is_cpu_in_full_precision():
    assert choose_device("auto", "auto") == DeviceChoice("cpu", "fp32", f"CPU ({torch.get_num_threads()} threads)")


@pytest.fixture
def two_gpus(monkeypatch):
    """torch's CUDA queries answer as two GPUs would. These machines have none: what is tested here
    is the choice made from the answers, not CUDA itself."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _i=0: "NVIDIA H100")

    def bf16(supported: bool) -> None:
        # As torch answers on a T4 or V100: bf16 "supported" only when emulation counts.
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True: supported or including_emulation)

    return bf16


@pytest.mark.parametrize(("bf16", "precision"), [(True, "bf16"), (False, "fp16")])
def test_auto_prefers_cuda_with_the_best_mixed_precision(two_gpus, bf16, precision):
    two_gpus(bf16)
    assert choose_device("auto", "auto") == DeviceChoice("cuda", precision, "2 x NVIDIA H100")
    assert choose_device("auto", "fp32").precision == "fp32"  # an explicit precision is kept


def test_a_process_of_a_multi_process_launch_names_the_one_gpu_it_drives(two_gpus, monkeypatch):
    two_gpus(True)
    names = {0: "NVIDIA H100", 1: "NVIDIA A100"}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: names[i])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    # Not "2 x ...": the run's manifest says "x 2 processes" after it.
    assert choose_device("auto", "auto") == DeviceChoice("cuda", "bf16", "NVIDIA A100")


def test_bf16_on_a_gpu_without_it_is_refused(two_gpus):
    two_gpus(False)
    with pytest.raises(CuratuneError) as err:
        choose_device("cuda", "bf16")
    assert str(err.value) == "[train] precision = 'bf16' is not supported by this GPU; use 'fp16' or 'auto'"


def test_auto_without_cuda_picks_apple_mps_before_the_cpu(monkeypatch):
    # As torch answers on an Apple-silicon Mac.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert choose_device("auto", "auto") == DeviceChoice("mps", "fp32", "Apple MPS")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_the_frozen_baseline_autocasts_on_any_cuda_device(device):
    """Training passes the Trainer's device, "cuda:0" (or "cuda:N" under a launcher): a check for
    "cuda" alone kept the frozen baseline in fp32 whatever precision the manifest recorded."""
    from curatune.train.probe import _autocast

    with pytest.warns(UserWarning, match="CUDA is not available") if not torch.cuda.is_available() else nullcontext():
        ctx = _autocast(device, "bf16")
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
    assert not isinstance(_autocast(device, "fp32"), torch.autocast)
    assert not isinstance(_autocast("cpu", "bf16"), torch.autocast)
