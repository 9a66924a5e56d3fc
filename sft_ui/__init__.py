"""sft-ui: run, watch and manage supervised fine-tuning jobs."""

from sft_ui.config import SFTConfig
from sft_ui.manager import JobManager, sft_job_manager

__all__ = ["JobManager", "SFTConfig", "sft_job_manager"]
