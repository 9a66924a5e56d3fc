"""The named Gradio endpoints for gradio_client: the REST API's calls, with the same JSON in and out."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import FileData
from gradio.utils import get_upload_folder
from pydantic import ValidationError

from sft_ui import checkpoints, settings
from sft_ui.config import check_text, describe_errors
from sft_ui.data import library
from sft_ui.job_fields import check_metadata
from sft_ui.manager import JobManager, NotFoundError, StateError
from sft_ui.playground import Playground
from sft_ui.store import StoreWriteError

API_NAMES = ("train", "list_jobs", "get_job", "stop_job", "get_metrics", "get_samples", "save_config", "list_configs",
             "get_config", "generate", "resume_job", "upload_dataset", "list_datasets", "preview_dataset",
             "delete_dataset", "import_model", "list_models", "get_model", "delete_model")
API_NAMES += ("create_sweep", "list_sweeps", "get_sweep", "stop_sweep")  # _add_sweep_api
API_NAMES += ("list_checkpoints",)  # _add_artifact_api
API_NAMES += ("get_events",)  # _add_events_api


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

    def train(config: dict, metadata: dict | None = None) -> dict:
        """Create a job from `config` (SFTConfig fields), with `metadata` (up to 16 string pairs), and start it:
        {job_id, status}."""
        job_id = call(lambda: manager.create_job(config, metadata=metadata or None))
        return {"job_id": job_id, "status": call(manager.start_job, job_id)["status"]}

    def list_jobs(status: str | None = None, metadata: dict | None = None) -> dict:
        """All jobs, newest first, optionally only those with `status` and whose metadata has every pair of
        `metadata`: {jobs: [...]}."""
        jobs = call(manager.list_jobs, checked(status, "status") or None)
        wanted = call(check_metadata, metadata)
        return {"jobs": [job for job in jobs if all(job["metadata"].get(k) == v for k, v in wanted.items())]}

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

    def get_samples(job_id: str, since: int | None = None) -> dict:
        """The model's greedy answers to the sample prompts: {job_id, samples: [{step, index, prompt, reference,
        answer}]}, only steps > since when given."""
        return {"job_id": job_id, "samples": call(manager.get_samples, checked(job_id, "job_id"), since)}

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

    for fn in (train, list_jobs, get_job, stop_job, get_metrics, get_samples, save_config, list_configs, get_config):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    _add_artifact_api(manager, playground, call)
    _add_dataset_api(manager, call)
    _add_model_api(manager, call)
    _add_sweep_api(manager, call)
    _add_events_api(manager, call)


def _add_artifact_api(manager: JobManager, playground: Playground, call: Callable[..., Any]) -> None:
    """The named endpoints `generate` and `resume_job`; `call` turns the manager's errors into gr.Error."""

    def generate(job_id: str, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 input: str = "", checkpoint: str = "") -> dict:  # noqa: A002 - alpaca's field name
        """The base and tuned answers to `prompt`, written as in training: {base, tuned, prompt_formatted, ...};
        `checkpoint` (like "checkpoint-150") answers with that checkpoint instead of the job's model."""
        tokens = int(max_new_tokens) if isinstance(max_new_tokens, float) and max_new_tokens.is_integer() \
            else max_new_tokens
        job_id = call(check_text, job_id, "job_id")
        return call(playground.generate, job_id, prompt, tokens, temperature, top_p, input or "", checkpoint or None)

    def resume_job(job_id: str, checkpoint: str = "") -> dict:
        """Continue a stopped or failed job from its last checkpoint (or `checkpoint`, like "checkpoint-150"; later
        ones are deleted): {message, job_id, status, step}."""
        record = call(manager.resume_job, call(check_text, job_id, "job_id"), checkpoint or None)
        step = record["resumed"]["from_step"]
        return {"message": f"Job {job_id} resumed from step {step}", "job_id": job_id, "status": record["status"],
                "step": step}

    def list_checkpoints(job_id: str) -> dict:
        """The job's checkpoints on disk: {job_id, checkpoints: [{name, step, size_bytes, train_loss, eval_loss,
        best}]} (REST's, without `path`)."""
        found = call(checkpoints.for_job, manager, call(check_text, job_id, "job_id"))
        return {**found, "checkpoints": [_no_path(entry) for entry in found["checkpoints"]]}

    for fn in (generate, resume_job, list_checkpoints):
        gr.api(fn, api_name=fn.__name__)


def _add_dataset_api(manager: JobManager, call: Callable[..., Any]) -> None:
    """The upload library's endpoints: upload_dataset, list_datasets, preview_dataset, delete_dataset."""

    def upload_dataset(file: FileData) -> dict:
        """Keep a file (gradio_client.handle_file(path)) in the library: {name, dataset_name, rows, format, ...}."""
        return _no_path(call(upload_file, manager, file))

    def list_datasets() -> dict:
        """The library's files, newest first: {datasets: [{name, dataset_name, rows, format, size_bytes, ...}]}."""
        return {"datasets": [_no_path(entry) for entry in call(manager.list_datasets)]}

    def preview_dataset(name: str, n: int = 5) -> dict:
        """A library file's entry and its first `n` rows as the model sees them: {name, ..., preview: [...]}."""
        count = int(n) if isinstance(n, float) and n.is_integer() else n
        if not isinstance(count, int) or not 1 <= count <= 50:
            raise gr.Error(f"n: must be a whole number from 1 to 50, got {n!r}", print_exception=False)
        return _no_path(call(manager.preview_dataset, call(check_text, name, "name"), count))

    def delete_dataset(name: str) -> dict:
        """Remove a library file (400 while a pending or running job uses it): {message}."""
        call(manager.delete_dataset, call(check_text, name, "name"))
        return {"message": f"Data set {name} deleted"}

    for fn in (upload_dataset, list_datasets, preview_dataset, delete_dataset):
        gr.api(fn, api_name=fn.__name__)


def _add_model_api(manager: JobManager, call: Callable[..., Any]) -> None:
    """The model library's endpoints: import_model, list_models, get_model, delete_model."""

    def import_model(gguf: str = "", name: str = "", dtype: str = "auto", file: FileData | None = None) -> dict:
        """Import a GGUF (`gguf`: a path under the data root, or `file`: gradio_client.handle_file(path)) into
        models/<name>; poll get_model(name) until its status is ready or failed: {name, status, progress, ...}."""
        name = call(check_text, name, "name") or None
        if file:  # None, or "" from a client that sends every parameter
            path, original = call(uploaded_file, file)
            with path.open("rb") as handle:
                uploaded = call(manager.models.receive, original, library.read_chunks(handle),
                                settings.max_model_upload_bytes())
            gguf = str(uploaded[0].relative_to(manager.store_root()))
            return _no_path(call(manager.models.start, gguf, name, dtype, uploaded))
        return _no_path(call(manager.models.start, call(check_text, gguf, "gguf"), name, dtype))

    def list_models() -> dict:
        """Local models and imports, newest first: {models: [{name, base_model, status, architecture, ...}]}."""
        return {"models": [_no_path(entry) for entry in call(lambda: manager.models.list())]}

    def get_model(name: str) -> dict:
        """One model, or its import while it runs or after it failed: {name, base_model, status, ...}."""
        return _no_path(call(lambda: manager.models.get(call(check_text, name, "name"))))

    def delete_model(name: str) -> dict:
        """Remove a local model (400 while it is imported or a pending or running job uses it): {message}."""
        call(lambda: manager.models.delete(call(check_text, name, "name")))
        return {"message": f"Model {name} deleted"}

    for fn in (import_model, list_models, get_model, delete_model):
        gr.api(fn, api_name=fn.__name__)


def _add_sweep_api(manager: JobManager, call: Callable[..., Any]) -> None:
    """Sweeps' endpoints, the same JSON as REST /sweeps: create_sweep, list_sweeps, get_sweep, stop_sweep."""

    def create_sweep(sweep: dict) -> dict:
        """One queued job per point of {"config", "grid": {field: [values]}} or {"config", "random": {field:
        [low, high]}, "trials", "seed"}; every point is checked first: the sweep with its jobs, ranked."""
        return call(lambda: manager.sweeps.create(sweep))

    def list_sweeps() -> dict:
        """Sweeps, newest first: {sweeps: [{sweep_id, name, fields, metric, job_ids, counts}]}."""
        return {"sweeps": call(lambda: manager.sweeps.list())}

    def get_sweep(sweep_id: str) -> dict:
        """A sweep's jobs ranked by its metric (eval loss ascending), the best marked: {..., jobs, best_job_id}."""
        return call(lambda: manager.sweeps.get(call(check_text, sweep_id, "sweep_id")))

    def stop_sweep(sweep_id: str) -> dict:
        """Stop every pending or running job of the sweep: {message, sweep_id, stopped}."""
        stopped = call(lambda: manager.sweeps.stop(call(check_text, sweep_id, "sweep_id")))
        return {"message": f"Sweep {sweep_id}: {stopped} job{'s' if stopped != 1 else ''} stopped",
                "sweep_id": sweep_id, "stopped": stopped}

    for fn in (create_sweep, list_sweeps, get_sweep, stop_sweep):
        gr.api(fn, api_name=fn.__name__)


def _add_events_api(manager: JobManager, call: Callable[..., Any]) -> None:
    """The job events' endpoint, the same JSON as REST /jobs/{job_id}/events: get_events."""

    def get_events(job_id: str, after: str | None = None, limit: int | None = None) -> dict:
        """The job's events after the event id `after`, oldest first, at most `limit` (100, up to 1000): {job_id,
        events: [{id, created_at, level, type, message, data}], has_more}."""
        found, more = call(manager.get_events, call(check_text, job_id, "job_id"),
                           call(check_text, after, "after") or None, limit)
        return {"job_id": job_id, "events": found, "has_more": more}

    gr.api(get_events, api_name="get_events", concurrency_limit=None)


def uploaded_file(file: Any) -> tuple[Path, str]:
    """The file Gradio received (its FileData, dict or path, inside Gradio's upload folder) and its original name."""
    if isinstance(file, FileData):
        path, name = file.path, file.orig_name
    elif isinstance(file, dict):
        path, name = file.get("path"), file.get("orig_name")
    else:
        path, name = file, None
    if not isinstance(path, str) or not path:
        raise ValueError("file: pass the file with gradio_client.handle_file(path)")
    source = Path(path).resolve()
    if not source.is_relative_to(Path(get_upload_folder()).resolve()) or not source.is_file():
        raise ValueError("file: not a file uploaded to this server")
    return source, name or source.name


def upload_file(manager: JobManager, file: Any) -> dict:
    """Copy a file that Gradio received into the data set library under its original name."""
    source, name = uploaded_file(file)
    with source.open("rb") as handle:
        return manager.upload_dataset(name, library.read_chunks(handle))


def _no_path(entry: dict) -> dict:
    """REST's entry without `path` (gradio_client would download any dict with a "path"); `dataset_name` holds it."""
    return {key: value for key, value in entry.items() if key != "path"}
