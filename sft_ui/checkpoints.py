"""A job's saved checkpoints: list them with their losses and which is the best, and check a name a person gave."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sft_ui import jobdir
from sft_ui.errors import NotFoundError

if TYPE_CHECKING:
    from sft_ui.manager import JobManager

NAME = re.compile(r"checkpoint-([0-9]{1,12})")  # used with fullmatch: no trailing newline, ASCII digits
STATE = "trainer_state.json"  # transformers writes it last: a checkpoint with it is whole
TRAINING_ONLY = ("optimizer.pt", "scheduler.pt", "scaler.pt", "training_args.bin")  # not needed to use the model


def found(job_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the job's whole checkpoints, oldest first."""
    try:
        entries = list((job_dir / jobdir.CHECKPOINTS).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    steps = [(int(match.group(1)), entry) for entry in entries
             if (match := NAME.fullmatch(entry.name)) and not entry.is_symlink() and (entry / STATE).is_file()]
    return sorted(steps)


def best_name(checkpoints: list[tuple[int, Path]]) -> str | None:
    """The folder name trainer_state.json's best_model_checkpoint points at (the newest checkpoint's state)."""
    if not checkpoints:
        return None
    try:
        state = json.loads((checkpoints[-1][1] / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    best = state.get("best_model_checkpoint") if isinstance(state, dict) else None
    return Path(best).name if isinstance(best, str) and best else None


def size_of(folder: Path) -> int:
    """Bytes of the folder's files, all levels."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def loss_at(points: list[dict[str, Any]], key: str, step: int, exact: bool) -> float | None:
    """The last `key` logged at `step` (or before it, unless `exact`); None when there is none."""
    value = None
    for point in points:
        at = point.get("step")
        if key in point and isinstance(at, int | float) and (at == step or (not exact and at < step)):
            value = point[key]
    return value


def describe(job_dir: Path, points: list[dict[str, Any]], data_root: Path) -> list[dict[str, Any]]:
    """Each whole checkpoint, oldest first: {name, step, path (relative to the data root), size_bytes, train_loss
    (the last logged at or before its step), eval_loss (of the evaluation at its step, or null), best}."""
    checkpoints = found(job_dir)
    best = best_name(checkpoints)
    listed = []
    for step, folder in checkpoints:
        try:
            where = folder.resolve().relative_to(data_root.resolve()).as_posix()
        except ValueError:  # a job dir outside the data root (an absolute output_dir)
            where = str(folder)
        listed.append({"name": folder.name, "step": step, "path": where, "size_bytes": size_of(folder),
                       "train_loss": loss_at(points, "loss", step, exact=False),
                       "eval_loss": loss_at(points, "eval_loss", step, exact=True), "best": folder.name == best})
    return listed


def for_job(manager: JobManager, job_id: str) -> dict[str, Any]:
    """{job_id, checkpoints: [...]} as GET /jobs/{id}/checkpoints answers (see describe)."""
    record = manager.get_job_status(job_id)
    points = manager.get_metrics(job_id)
    return {"job_id": job_id, "checkpoints": describe(Path(record["job_dir"]), points, manager.store_root())}


def resolve(job_dir: Path, name: Any) -> Path:
    """The folder of checkpoint `name` (like "checkpoint-150"): ValueError for a malformed name, NotFoundError for
    one the job does not have; both name `checkpoint`."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        shown = repr(name)[:60]
        raise ValueError(f"checkpoint: must be a checkpoint folder name like 'checkpoint-150', got {shown}")
    root = (job_dir / jobdir.CHECKPOINTS).resolve()
    folder = root / name
    if folder.is_symlink() or not folder.resolve().is_relative_to(root) or not (folder / STATE).is_file():
        have = ", ".join(path.name for _, path in found(job_dir)) or "none"
        raise NotFoundError(f"checkpoint: this job has no {name} (its checkpoints: {have})")
    return folder


def drop_after(job_dir: Path, step: int) -> list[str]:
    """Delete the checkpoints saved after `step` (a resume from an older one trains those steps again)."""
    dropped = []
    for at, folder in found(job_dir):
        if at > step:
            shutil.rmtree(folder, ignore_errors=True)
            dropped.append(folder.name)
    return dropped


def model_files(folder: Path) -> list[Path]:
    """The files of a checkpoint (or model folder) that using the model needs: not the optimizer's state."""
    return [path for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and path.name not in TRAINING_ONLY
            and not path.name.startswith("rng_state")]

