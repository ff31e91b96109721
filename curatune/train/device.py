"""Where training runs and in which precision: ``auto`` picks CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

from curatune.errors import CuratuneError


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # cuda | mps | cpu
    precision: str  # bf16 | fp16 | fp32
    name: str  # human-readable, for the manifest

    @property
    def torch_device(self) -> str:
        return "cuda" if self.device == "cuda" else self.device


def launched_processes() -> int:
    """How many processes torchrun / accelerate launch started (they set WORLD_SIZE); 1 otherwise."""
    return _launcher_number("WORLD_SIZE", 1)


def _launcher_number(name: str, default: int) -> int:
    # Read before any command (a job wrapper may export it empty): a ValueError was a traceback (exit 1).
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise CuratuneError(f"the environment variable {name}={value!r} is not a whole number (torchrun and "
                            "accelerate launch set it; unset it to run as one process)") from None


def gpus_per_process(choice: DeviceChoice) -> int:
    """GPUs one process spreads each batch over: every visible one for a lone CUDA process (the
    Trainer's DataParallel, batch_size on each), else one device."""
    if choice.device != "cuda" or launched_processes() > 1:
        return 1
    import torch

    return torch.cuda.device_count()


def is_main_process() -> bool:
    """False in every process but rank 0 of a torchrun / accelerate launch (they set RANK): only rank 0
    may clear or write the output directory, or speak to the user."""
    return _launcher_number("RANK", 0) == 0


def _cuda_name() -> str:
    import torch

    n = torch.cuda.device_count()
    if not n:
        return "cuda"
    # Under torchrun / accelerate launch (WORLD_SIZE set) each process drives the one GPU of its
    # LOCAL_RANK, though it sees them all; the manifest adds how many processes ran. One process
    # alone spreads its batches over every visible GPU (the Trainer's DataParallel).
    if launched_processes() > 1:
        return torch.cuda.get_device_name(int(os.environ.get("LOCAL_RANK", "0")))
    return f"{n} x {torch.cuda.get_device_name(0)}"


def _native_bf16() -> bool:
    # torch counts bf16 emulated in fp32 on pre-Ampere GPUs (T4, V100) as supported; there it is slow,
    # and fp16 is the mixed precision those GPUs have.
    import torch

    return torch.cuda.is_bf16_supported(including_emulation=False)


def choose_device(device: str, precision: str) -> DeviceChoice:
    import torch

    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CuratuneError("[train] device = 'cuda' but no CUDA GPU is visible to torch "
                            "(set device = 'auto' or 'cpu', or install a CUDA build of torch)")
    if device == "mps" and not mps_ok:
        raise CuratuneError("[train] device = 'mps' but Apple MPS is not available here (set device = 'auto')")
    if precision == "auto":
        # Mixed precision on CPU and MPS is slower or unsupported for these models.
        precision = ("bf16" if _native_bf16() else "fp16") if device == "cuda" else "fp32"
    if precision in ("bf16", "fp16") and device != "cuda":
        raise CuratuneError(f"[train] precision = '{precision}' needs a CUDA GPU; use 'auto' or 'fp32' on {device}")
    if precision == "bf16" and not _native_bf16():
        raise CuratuneError("[train] precision = 'bf16' is not supported by this GPU; use 'fp16' or 'auto'")
    if device == "cuda":
        name = _cuda_name()
    elif device == "mps":
        name = "Apple MPS"
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    return DeviceChoice(device=device, precision=precision, name=name)
