"""Resume a stopped or failed job from its last checkpoint: find it, trim the metrics, tell the worker."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sft_ui import jobdir

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(job_dir: Path) -> tuple[str, int] | None:
    """(folder name, step) of the newest complete checkpoint under job_dir/checkpoints, or None."""
    found: list[tuple[int, str]] = []
    try:
        entries = list((job_dir / jobdir.CHECKPOINTS).iterdir())
    except FileNotFoundError:
        return None
    for entry in entries:
        match = _CHECKPOINT.match(entry.name)
        if match and (entry / "trainer_state.json").is_file():  # written last: the checkpoint is whole
            found.append((int(match.group(1)), entry.name))
    if not found:
        return None
    step, name = max(found)
    return name, step


def trim_metrics(path: Path, step: int, keep_last: bool = True) -> int:
    """Drop the metric lines logged after `step` (at it too, unless `keep_last`) and lines cut short, atomically;
    returns how many went."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            point = json.loads(line)
        except ValueError:
            continue
        if isinstance(point, dict) and isinstance(point.get("step"), int | float) and (
                point["step"] < step or (keep_last and point["step"] == step)):
            kept.append(line)
    jobdir.write_text(path, "".join(f"{line}\n" for line in kept))
    return len(lines) - len(kept)


def plan(job_dir: Path, checkpoint: str | None = None) -> dict[str, Any] | None:
    """Tell the worker where to continue (resume.json: the checkpoint, the last one unless named, and its step);
    None when there is none. A bad `checkpoint` raises ValueError or NotFoundError naming it.

    Nothing else changes yet: the caller records the job as resumed, then calls clean().
    """
    from sft_ui import checkpoints

    if checkpoint:
        name = checkpoints.resolve(job_dir, checkpoint).name
        step = int(name.rsplit("-", 1)[1])
    else:
        point = last_checkpoint(job_dir)
        if point is None:
            return None
        name, step = point
    resume = {"checkpoint": name, "step": step}
    jobdir.write_json(job_dir / jobdir.RESUME, resume, durable=True)
    return resume


def clean(job_dir: Path, step: int) -> None:
    """Drop the metrics logged after `step` (training repeats those steps), the sample answers from `step` on,
    the checkpoints saved after `step`, and the previous run's result, status and stop files."""
    from sft_ui import checkpoints

    checkpoints.drop_after(job_dir, step)  # a resume from an older checkpoint: those steps are trained again
    trim_metrics(job_dir / jobdir.METRICS, step)
    trim_metrics(job_dir / jobdir.SAMPLES, step, keep_last=False)  # the resumed run answers again at `step`
    for stale in (jobdir.RESULT, jobdir.STATUS, jobdir.STOP):
        (job_dir / stale).unlink(missing_ok=True)


def forget(job_dir: Path) -> None:
    """Undo plan(): the job was not resumed after all."""
    (job_dir / jobdir.RESUME).unlink(missing_ok=True)
