"""Keep what a job trained: a zip to download, a LoRA adapter merged into its base model, a push to the Hub."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from sft_ui import checkpoints, jobdir, settings
from sft_ui.builtin import is_builtin
from sft_ui.config import check_text
from sft_ui.errors import one_line
from sft_ui.manager import JobManager, StateError
from sft_ui.status import ACTIVE
from sft_ui.tracking import TENSORBOARD_DIR

log = logging.getLogger(__name__)

MERGED = "merged"  # the job dir's folder for the merged model
MAX_EXPORT_AGE = 3600.0  # seconds a download zip is kept: a new export and the server's start remove older ones
ADAPTER_CONFIG = "adapter_config.json"
_STORED = (".safetensors", ".bin", ".pt", ".pth", ".gguf")  # weights barely compress: store them as they are
_merge_lock = threading.Lock()  # one merge at a time: each holds a whole model in memory


def export_dir(manager: JobManager) -> Path:
    """Where download zips are built: `<data dir>/.sft_ui/exports`, readable by the server's user only."""
    folder = settings.private_dir(manager.store_root()) / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # also a folder an older version or another umask made
    return folder


def remove_old_exports(manager: JobManager, max_age: float = MAX_EXPORT_AGE) -> int:
    """Delete download zips (and leftover partial ones) older than `max_age` seconds; how many went."""
    removed, cutoff = 0, time.time() - max_age
    for path in export_dir(manager).iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError as exc:  # gone already, or not ours to delete: the next sweep tries again
            log.warning("could not remove old export %s: %s", path, exc)
    return removed


def saved_model(manager: JobManager, job_id: str, checkpoint: str | None = None) -> tuple[dict[str, Any], Path]:
    """The job's record and its saved model folder (model/, or the named checkpoint's folder); StateError while it
    runs or when it saved none."""
    record = manager.get_job_status(job_id)
    if record["status"] in ACTIVE:
        raise StateError(f"job {job_id} is {record['status']}; its model can be used once it has completed or "
                         "stopped")
    if checkpoint:
        return record, checkpoints.resolve(Path(record["job_dir"]), checkpoint)
    model_dir = Path(record["job_dir"]) / jobdir.MODEL
    if not has_model(model_dir):
        raise StateError(f"job {job_id} has no saved model: it {record['status']} before saving one")
    return record, model_dir


def has_model(model_dir: Path) -> bool:
    """Whether the folder holds a saved adapter or model."""
    return (model_dir / ADAPTER_CONFIG).is_file() or (model_dir / "config.json").is_file()


def is_adapter(model_dir: Path) -> bool:
    """Whether the folder holds a LoRA adapter (rather than a whole model)."""
    return (model_dir / ADAPTER_CONFIG).is_file()


def model_card(record: dict[str, Any], what: str, local_base: Path | None = None) -> str:
    """A README for the exported or pushed model: what it was trained from, and how to load it. `local_base` is
    the folder of a base model that is not on the Hub (built-in, imported or copied under the data root)."""
    config = record.get("config") or {}
    result = record.get("result") or {}
    base = config.get("base_model", "")
    loader = "AutoPeftModelForCausalLM" if what == "lora_adapter" else "AutoModelForCausalLM"
    module = "peft" if what == "lora_adapter" else "transformers"
    front = ["---", "library_name: " + ("peft" if what == "lora_adapter" else "transformers"),
             "pipeline_tag: text-generation", "tags: [sft, trl, sft-ui]"]
    if base and local_base is None and not is_builtin(base) and "/" in base and not os.path.isabs(base):
        front.append(f"base_model: {base}")
    front.append("---")
    facts = [f"- base model: `{base}`", f"- data set: `{config.get('dataset_name', '')}`",
             f"- steps: {result.get('steps', (record.get('progress') or {}).get('step'))}",
             f"- final training loss: {result.get('final_loss')}",
             f"- prompt format: {result.get('prompt_style', 'see config')}"]
    usage = ["The tokenizer carries the chat template the model was trained with: prompt it with "
             "`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`.", ""] \
        if result.get("prompt_style") == "chat" else []
    if what == "lora_adapter" and local_base is not None:
        usage += _local_base_note(base, local_base)
    return "\n".join([
        *front, "", f"# {record.get('name') or record['job_id']}", "",
        f"A {what.replace('_', ' ')} fine-tuned with sft-ui (TRL SFT), job `{record['job_id']}`.",
        "", *facts, "", "```python", f"from {module} import {loader}", "from transformers import AutoTokenizer", "",
        f'model = {loader}.from_pretrained("<this folder or repo>")',
        'tokenizer = AutoTokenizer.from_pretrained("<this folder or repo>")',
        "```", "", *usage,
        "The training config is in `sft_ui_config.json` (`config.json` inside a zip).", "",
    ])


def _local_base_note(base: str, local_base: Path) -> list[str]:
    """How to load an adapter whose base model is a local folder rather than a Hub repo."""
    return [
        f"The base model `{base}` is a local folder, not a Hub repo: on the machine that trained it, "
        f"`{local_base}`. `{'AutoPeftModelForCausalLM'}` loads the base from `base_model_name_or_path` in "
        "`adapter_config.json`; on another machine, copy that folder and load the two yourself:", "",
        "```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM", "",
        'base = AutoModelForCausalLM.from_pretrained("<the base model folder>")',
        'model = PeftModel.from_pretrained(base, "<this folder>")', "```", "",
    ]


def local_base(manager: JobManager, record: dict[str, Any]) -> Path | None:
    """The folder of the job's base model when it is not a Hub id (built-in, or a folder under the data root)."""
    from sft_ui.data.sources import resolve_model_path

    base = str((record.get("config") or {}).get("base_model", ""))
    with contextlib.suppress(ValueError, OSError):
        where = resolve_model_path(base, manager.store_root(), manager.cache_dir)
        return Path(where) if Path(where).is_dir() else None
    return None


def zip_job(manager: JobManager, job_id: str, checkpoint: str | None = None) -> Path:
    """Build `sft-ui-<job_id>.zip` (`sft-ui-<job_id>-<checkpoint>.zip`): model/ (adapter or model, with tokenizer;
    a checkpoint's without its optimizer state), config.json, metrics.jsonl."""
    record, model_dir = saved_model(manager, job_id, checkpoint)
    job_dir = Path(record["job_dir"])
    remove_old_exports(manager)
    dest = export_dir(manager) / f"sft-ui-{job_id}{'-' + model_dir.name if checkpoint else ''}.zip"
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    what = "lora_adapter" if is_adapter(model_dir) else "full_model"
    try:
        with open(tmp, "xb", opener=_private) as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) \
                as archive:
            for path in checkpoints.model_files(model_dir) if checkpoint else sorted(model_dir.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    stored = path.suffix in _STORED
                    archive.write(path, f"model/{path.relative_to(model_dir).as_posix()}",
                                  compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
            for name in (jobdir.CONFIG, jobdir.METRICS, jobdir.RESULT):
                if (job_dir / name).is_file():
                    archive.write(job_dir / name, name)
            for path in sorted((job_dir / TENSORBOARD_DIR).rglob("*")):  # report_to tensorboard's event files
                if path.is_file() and not path.is_symlink():
                    archive.write(path, path.relative_to(job_dir).as_posix())
            archive.writestr("README.md", model_card(record, what, local_base(manager, record)))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _private(path: str, flags: int) -> int:
    """os.open with mode 0600: the zip is the server user's only from its first byte."""
    return os.open(path, flags, 0o600)


def merged_dir(job_dir: Path, checkpoint: str | None = None) -> Path:
    """Where the merged model goes: <job dir>/merged, or <job dir>/merged-<checkpoint> for a checkpoint's."""
    return job_dir / (f"{MERGED}-{checkpoint}" if checkpoint else MERGED)


def merge(manager: JobManager, job_id: str, checkpoint: str | None = None) -> dict[str, Any]:
    """Merge the job's LoRA adapter (or the named checkpoint's) into its base model and save the whole model into
    <job dir>/merged (merged-<checkpoint>)."""
    record, model_dir = saved_model(manager, job_id, checkpoint)
    if not is_adapter(model_dir):
        raise StateError(f"job {job_id} trained the whole model (use_lora was off): {model_dir.name}/ already is a "
                         "full model, with nothing to merge")
    from sft_ui import data

    job_dir = Path(record["job_dir"])
    dest = merged_dir(job_dir, model_dir.name if checkpoint else None)
    with _merge_lock:
        from peft import PeftModel
        from transformers import AutoTokenizer

        base = data.load_model(record["config"]["base_model"], manager.store_root(), manager.cache_dir, dtype="auto")
        merged = PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
        tmp = job_dir / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            merged.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            (tmp / "README.md").write_text(model_card(record, "merged_model", local_base(manager, record)),
                                           encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        del merged, base
    which = f"the adapter of {checkpoint} of job {job_id}" if checkpoint else f"the adapter of job {job_id}"
    return {"message": f"Merged {which} into {record['config']['base_model']}; saved to {dest}",
            "job_id": job_id, "merged_dir": str(dest)}


def push(manager: JobManager, job_id: str, repo_id: str, private: bool = True, merged: bool = False,
         checkpoint: str | None = None) -> dict[str, Any]:
    """Upload the job's model (or its merged model; of `checkpoint` when named) to the Hub repo `repo_id`, with
    HF_TOKEN from the environment.

    The token is read when the push starts and handed to the Hub client only: never stored or logged.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    record = manager.get_job_status(job_id)
    repo_id = check_text((repo_id or "").strip() if isinstance(repo_id, str) else "", "repo_id")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"repo_id: not a Hub repo id (owner/name): {one_line(exc, 200)}") from None
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise ValueError("HF_TOKEN is not set: add a Hugging Face token with write access to the server's "
                         "environment (a Space secret on a Space) to push to the Hub")
    _, model_dir = saved_model(manager, job_id, checkpoint)
    folder, what = model_dir, "lora_adapter" if is_adapter(model_dir) else "full_model"
    if merged:
        folder, what = merged_dir(Path(record["job_dir"]), model_dir.name if checkpoint else None), "merged_model"
        if not (folder / "config.json").is_file():
            raise StateError(f"job {job_id} has no merged model{' of ' + model_dir.name if checkpoint else ''} yet; "
                             "merge it first")
    operations = [CommitOperationAdd(path.relative_to(folder).as_posix(), str(path))
                  for path in checkpoints.model_files(folder) if path.name != "README.md"]
    config = json.dumps(record.get("config") or {}, indent=2).encode()
    operations += [CommitOperationAdd("README.md", model_card(record, what, local_base(manager, record)).encode()),
                   CommitOperationAdd("sft_ui_config.json", config)]
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=bool(private), exist_ok=True, repo_type="model")
        api.create_commit(repo_id, operations, commit_message=f"sft-ui job {job_id}: {what.replace('_', ' ')}",
                          repo_type="model")
    except Exception as exc:  # auth, network, quota: one line the person can act on
        raise ValueError(f"push to the Hub failed: {one_line(exc)}") from None
    link = str(url) if url else f"https://huggingface.co/{repo_id}"
    return {"message": f"Pushed the {what.replace('_', ' ')} of job {job_id} to {link}", "job_id": job_id,
            "repo_id": repo_id, "url": link, "private": bool(private), "pushed": what, "files": len(operations)}
