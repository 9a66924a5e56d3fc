"""sft_ui.checkpoints without training: listing, losses at a step, the best mark, and names a person gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sft_ui import checkpoints, jobdir
from sft_ui.errors import NotFoundError


def make(job_dir: Path, step: int, best: int | None = None, whole: bool = True) -> Path:
    """A checkpoint folder with a weight file (and trainer_state.json unless not `whole`)."""
    folder = job_dir / jobdir.CHECKPOINTS / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x" * step)
    (folder / "optimizer.pt").write_bytes(b"o")
    if whole:
        state = {"best_model_checkpoint": str(folder.parent / f"checkpoint-{best}") if best else None}
        (folder / checkpoints.STATE).write_text(json.dumps(state))
    return folder


def test_describe_lists_whole_checkpoints_with_losses_and_the_best(tmp_path: Path) -> None:
    job_dir = tmp_path / "outputs" / "job1"
    make(job_dir, 20, best=10)
    make(job_dir, 10)
    make(job_dir, 30, best=10)
    make(job_dir, 40, whole=False)  # being written: not listed
    points = [{"step": s, "loss": 3.0 - s / 100} for s in range(1, 31) if s % 4 == 0] + \
        [{"step": 10, "eval_loss": 1.5}, {"step": 30, "eval_loss": 1.9}]
    listed = checkpoints.describe(job_dir, points, tmp_path)
    assert [c["name"] for c in listed] == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert [c["step"] for c in listed] == [10, 20, 30]
    assert listed[0]["path"] == "outputs/job1/checkpoints/checkpoint-10"
    assert [c["train_loss"] for c in listed] == [3.0 - 8 / 100, 3.0 - 20 / 100, 3.0 - 28 / 100]  # at or before
    assert [c["eval_loss"] for c in listed] == [1.5, None, 1.9]  # only the evaluation of that step
    assert [c["best"] for c in listed] == [True, False, False]
    folder = job_dir / jobdir.CHECKPOINTS / "checkpoint-20"
    assert listed[1]["size_bytes"] == sum(path.stat().st_size for path in folder.iterdir())


def test_no_checkpoints_folder_lists_nothing(tmp_path: Path) -> None:
    assert checkpoints.describe(tmp_path / "job", [], tmp_path) == []
    assert checkpoints.best_name([]) is None


@pytest.mark.parametrize("name", ["../x", "checkpoint-", "checkpoint-1/../../x", "model", "", 5, None,
                                  "checkpoint-1\n", "checkpoint-１"])
def test_resolve_refuses_a_malformed_name_naming_checkpoint(tmp_path: Path, name: object) -> None:
    make(tmp_path, 1)
    with pytest.raises(ValueError, match="^checkpoint: "):
        checkpoints.resolve(tmp_path, name)


def test_resolve_refuses_a_missing_or_partial_checkpoint_and_says_which_exist(tmp_path: Path) -> None:
    make(tmp_path, 5)
    make(tmp_path, 7, whole=False)
    assert checkpoints.resolve(tmp_path, "checkpoint-5") == tmp_path / jobdir.CHECKPOINTS / "checkpoint-5"
    for name in ("checkpoint-999", "checkpoint-7"):
        with pytest.raises(NotFoundError, match=r"^checkpoint: this job has no .* \(its checkpoints: checkpoint-5\)"):
            checkpoints.resolve(tmp_path, name)


def test_resolve_refuses_a_link_out_of_the_folder(tmp_path: Path) -> None:
    outside = make(tmp_path / "other", 3)
    (tmp_path / jobdir.CHECKPOINTS).mkdir()
    (tmp_path / jobdir.CHECKPOINTS / "checkpoint-3").symlink_to(outside)
    with pytest.raises(NotFoundError, match="^checkpoint: "):
        checkpoints.resolve(tmp_path, "checkpoint-3")


def test_drop_after_and_model_files(tmp_path: Path) -> None:
    for step in (5, 10, 15):
        make(tmp_path, step)
    assert checkpoints.drop_after(tmp_path, 5) == ["checkpoint-10", "checkpoint-15"]
    assert [folder.name for _, folder in checkpoints.found(tmp_path)] == ["checkpoint-5"]
    names = [p.name for p in checkpoints.model_files(tmp_path / jobdir.CHECKPOINTS / "checkpoint-5")]
    assert names == ["adapter_model.safetensors", checkpoints.STATE]
