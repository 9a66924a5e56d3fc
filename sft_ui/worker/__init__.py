"""What runs in a job's own process: `python -m sft_ui.worker`, the training run, multi-process launch."""
