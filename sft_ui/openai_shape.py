"""A job record in the shape of OpenAI's fine-tuning job object (GET /jobs/{id}?format=openai); README maps it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# sft-ui's statuses -> OpenAI's (validating_files has no counterpart: a config is checked before the job exists)
STATUS = {"pending": "queued", "running": "running", "completed": "succeeded", "failed": "failed",
          "stopped": "cancelled"}


def unix_seconds(iso: str | None) -> int | None:
    """An ISO 8601 UTC time ('2026-01-02T03:04:05Z') as whole seconds since the epoch; None stays None."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's hyperparameters: n_epochs, batch_size (per step, after accumulation), and sft-ui's learning_rate
    beside a null learning_rate_multiplier (sft-ui sets the rate itself, not a multiple of a default)."""
    return {
        "n_epochs": config.get("num_train_epochs"),
        "batch_size": (config.get("batch_size") or 1) * (config.get("gradient_accumulation_steps") or 1),
        "learning_rate_multiplier": None,
        "learning_rate": config.get("learning_rate"),
        "max_steps": config.get("max_steps"),
    }


def fine_tuning_job(record: dict[str, Any]) -> dict[str, Any]:
    """`record` (as GET /jobs/{id} answers it) as an OpenAI fine_tuning.job object, with sft-ui's progress added."""
    config = record.get("config") or {}
    result = record.get("result") or {}
    status = STATUS.get(str(record.get("status")), str(record.get("status")))
    error = record.get("error")
    hyper = hyperparameters(config)
    job_id = record["job_id"]
    return {
        "id": job_id,
        "object": "fine_tuning.job",
        "created_at": unix_seconds(record.get("created_at")),
        "finished_at": unix_seconds(record.get("finished_at")),
        "model": config.get("base_model"),
        "fine_tuned_model": result.get("output_dir") if status == "succeeded" else None,
        "organization_id": None,
        "status": status,
        "hyperparameters": hyper,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        "training_file": config.get("dataset_name"),
        "validation_file": config.get("eval_dataset") or None,
        "result_files": [f"/api/sft/jobs/{job_id}/metrics"] + ([f"/api/sft/jobs/{job_id}/download"]
                                                              if status == "succeeded" else []),
        "trained_tokens": None if status in ("queued", "running") else record.get("trained_tokens"),  # as OpenAI
        "error": {"code": "training_failed", "message": error, "param": None} if error else None,
        "seed": config.get("seed"),
        "user_provided_suffix": record.get("name"),
        "metadata": record.get("metadata") or None,
        "estimated_finish": unix_seconds(record.get("estimated_finish")),
        "integrations": [{"type": tracker} for tracker in config.get("report_to") or []],
        "progress": record.get("progress"),
    }
