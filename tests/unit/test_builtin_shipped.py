"""The built-in model shipped in the package: made by today's recipe, and used as is (nothing made, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sft_ui import builtin
from sft_ui.builtin import BUILTIN_MODEL, resolve_builtin_model

MODEL_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def test_the_shipped_builtin_model_is_made_by_this_recipe() -> None:
    assert builtin.SHIPPED == Path(builtin.__file__).parent / "assets" / "tiny-gpt2"
    marker = json.loads((builtin.SHIPPED / builtin.MARKER).read_text())
    assert marker == builtin._recipe(), (f"the built-in model's recipe changed: run `{builtin.WRITE_SHIPPED}` and "
                                         f"commit {builtin.SHIPPED.relative_to(Path(builtin.__file__).parents[1])}")
    for name in MODEL_FILES:
        assert (builtin.SHIPPED / name).is_file(), name


def test_an_empty_cache_gets_the_shipped_builtin_model_and_stays_empty(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def build(folder: Path) -> None:
        raise AssertionError(f"the built-in model was made in {folder} although the shipped one is current")

    monkeypatch.setattr(builtin, "_build", build)
    before = {p.name: p.stat().st_mtime_ns for p in builtin.SHIPPED.iterdir()}
    cache = tmp_path / "cache"
    assert resolve_builtin_model(BUILTIN_MODEL, cache) == builtin.SHIPPED
    assert resolve_builtin_model(BUILTIN_MODEL, str(cache)) == builtin.SHIPPED
    assert not cache.exists(), "no folder, lock or model in the cache"
    assert {p.name: p.stat().st_mtime_ns for p in builtin.SHIPPED.iterdir()} == before


def test_a_changed_recipe_leaves_the_shipped_builtin_model_aside(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    made = []

    def build(folder: Path) -> None:
        made.append(folder)
        (folder / "config.json").touch()

    monkeypatch.setattr(builtin, "_build", build)
    monkeypatch.setitem(builtin.PRETRAIN, "steps", builtin.PRETRAIN["steps"] + 1)
    assert resolve_builtin_model(BUILTIN_MODEL, tmp_path) == tmp_path / "tiny-gpt2"
    assert len(made) == 1, "built into the cache, once"
    assert made[0].parent == tmp_path
    assert (tmp_path / "tiny-gpt2" / "config.json").is_file()
