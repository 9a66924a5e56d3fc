"""What this machine can train with: the form options that need a GPU, and why they are off here.

The GPUs are counted through nvidia-smi (sft_ui.resources), never through torch: the server must not import it.
"""

from dataclasses import dataclass
from typing import Any

from sft_ui import resources

GPU_PRECISIONS = ("bf16", "fp16")


@dataclass(frozen=True)
class Machine:
    """The GPUs the server sees; what the form offers follows from it."""

    gpus: int

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0

    def blocked(self) -> dict[str, str]:
        """Fields that cannot be changed here -> the reason (the form shows it and keeps the field's default)."""
        reasons: dict[str, str] = {}
        if not self.has_gpu:
            reasons["tf32"] = "Needs an NVIDIA GPU (Ampere or newer); this machine has none, so it is ignored."
            reasons["use_liger_kernel"] = "Needs a GPU; this machine has none."
        if self.gpus <= 1:
            reasons["num_processes"] = (f"More than 1 process needs one GPU each; this machine has "
                                        f"{self.gpus or 'none'}.")
        return reasons

    def precisions(self, choices: tuple[str, ...]) -> tuple[str, ...]:
        """The precision choices usable here (bf16 and fp16 need a GPU)."""
        return choices if self.has_gpu else tuple(c for c in choices if c not in GPU_PRECISIONS)


def detect() -> Machine:
    """This machine, as nvidia-smi reports it (no GPU when there is no nvidia-smi)."""
    return Machine(gpus=len(resources.gpus()))


def needs_gpu(config: dict[str, Any]) -> bool:
    """Whether a config only runs as set on a GPU: bf16/fp16, Liger kernels, several processes."""
    return (config.get("precision") in GPU_PRECISIONS or bool(config.get("use_liger_kernel"))
            or (config.get("num_processes") or 1) > 1)
