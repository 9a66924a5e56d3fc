"""The named Gradio endpoints for gradio_client: the REST API's calls, with the same JSON in and out."""

from collections.abc import Callable
from typing import Any

import gradio as gr
from pydantic import ValidationError

from sft_ui.config import check_text, describe_errors
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.playground import Playground
from sft_ui.store import StoreWriteError

API_NAMES = ("train", "list_jobs", "get_job", "stop_job", "get_metrics", "save_config", "list_configs", "get_config",
             "generate", "resume_job")


def explain(exc: Exception) -> str:
    """A person-readable message for an error the JobManager raised."""
    if isinstance(exc, ValidationError):
        return describe_errors(exc)
    if isinstance(exc, StoreWriteError):
        return exc.explain()
    return str(exc)


def add_api(manager: JobManager, playground: Playground) -> None:
    """The named endpoints for gradio_client (call inside the Blocks): the same JSON in and out as the REST API."""

    def call(fn: Any, *args: Any) -> Any:
        """Run a JobManager call; its errors reach the client as gr.Error naming what was wrong."""
        try:
            return fn(*args)
        except (ValidationError, NotFoundError, StateError, ValueError, TypeError, StoreWriteError) as exc:
            raise gr.Error(explain(exc), print_exception=False) from None

    def checked(value: Any, field: str) -> Any:
        """An id or filter as given; gr.Error naming `field` when it holds a lone surrogate or control character."""
        return call(check_text, value, field)

    def train(config: dict) -> dict:
        """Create a job from `config` (SFTConfig fields) and start it: {job_id, status}."""
        job_id = call(manager.create_job, config)
        return {"job_id": job_id, "status": call(manager.start_job, job_id)["status"]}

    def list_jobs(status: str | None = None) -> dict:
        """All jobs, newest first, optionally only those with `status`: {jobs: [...]}."""
        return {"jobs": call(manager.list_jobs, checked(status, "status") or None)}

    def get_job(job_id: str) -> dict:
        """One job record: status, progress, metrics, config, error or result."""
        return call(manager.get_job_status, checked(job_id, "job_id"))

    def stop_job(job_id: str) -> dict:
        """Stop a pending or running job (it saves what it has): {message, job_id, status}."""
        record = call(manager.stop_job, checked(job_id, "job_id"))
        return {"message": f"Job {job_id} stopped", "job_id": job_id, "status": record["status"]}

    def get_metrics(job_id: str, since: int | None = None, max_points: int | None = None) -> dict:
        """The job's logged points (loss, ...) with step > since, at most max_points (evenly spread) when given."""
        return {"job_id": job_id, "points": call(manager.get_metrics, checked(job_id, "job_id"), since, max_points)}

    def save_config(name: str, config: dict) -> dict:
        """Store `config` under `name` (replacing a config of that name): {config_id, name}."""
        config_id = call(manager.save_config, name, config)
        return {"config_id": config_id, "name": manager.get_config(config_id)["name"]}

    def list_configs() -> list:
        """Saved configs: [{config_id, name, config}, ...]."""
        return call(manager.list_configs)

    def get_config(config_id: str) -> dict:
        """One saved config: {config_id, name, config}."""
        return call(manager.get_config, checked(config_id, "config_id"))

    for fn in (train, list_jobs, get_job, stop_job, get_metrics, save_config, list_configs, get_config):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    _add_artifact_api(manager, playground, call)


def _add_artifact_api(manager: JobManager, playground: Playground, call: Callable[..., Any]) -> None:
    """The named endpoints `generate` and `resume_job`; `call` turns the manager's errors into gr.Error."""

    def generate(job_id: str, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 input: str = "") -> dict:  # noqa: A002 - alpaca's field name
        """The base and tuned answers to `prompt`, written as in training: {base, tuned, prompt_formatted, ...}."""
        tokens = int(max_new_tokens) if isinstance(max_new_tokens, float) and max_new_tokens.is_integer() \
            else max_new_tokens
        job_id = call(check_text, job_id, "job_id")
        return call(playground.generate, job_id, prompt, tokens, temperature, top_p, input or "")

    def resume_job(job_id: str) -> dict:
        """Continue a stopped or failed job from its last checkpoint: {message, job_id, status, step}."""
        record = call(manager.resume_job, call(check_text, job_id, "job_id"))
        step = record["resumed"]["from_step"]
        return {"message": f"Job {job_id} resumed from step {step}", "job_id": job_id, "status": record["status"],
                "step": step}

    for fn in (generate, resume_job):
        gr.api(fn, api_name=fn.__name__)
