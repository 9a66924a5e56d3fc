"""The shipped built-in model is what `_build` makes today (a slow test: it pre-trains the model, ~25 s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sft_ui import builtin

SAME_BYTES = (
    "tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja", builtin.MARKER,
)


@pytest.mark.slow  # not named by conftest's STARTS: it calls _build itself
def test_the_shipped_builtin_model_is_what_the_recipe_builds(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    builtin._build(tmp_path)
    regenerate = f"run `{builtin.WRITE_SHIPPED}` and commit sft_ui/assets/{builtin.MODEL_DIR}"
    shipped = builtin.SHIPPED
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in shipped.iterdir()), regenerate
    for name in SAME_BYTES:
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), f"{name} differs: {regenerate}"
    config, made = (json.loads((folder / "config.json").read_text()) for folder in (shipped, tmp_path))
    for one in (config, made):
        one.pop("transformers_version")  # informational: another transformers that builds the same model is fine
    assert made == config, regenerate
    weights, rebuilt = (load_file(folder / "model.safetensors") for folder in (shipped, tmp_path))
    assert sorted(rebuilt) == sorted(weights)
    for name, tensor in weights.items():
        assert rebuilt[name].dtype == tensor.dtype, name
        assert rebuilt[name].shape == tensor.shape, name
        # The build runs on one thread with deterministic algorithms, so this machine repeats it bit for bit;
        # another CPU (other SIMD kernels, another BLAS) may round the last bits differently over 400 steps.
        assert torch.allclose(rebuilt[name], tensor, rtol=0, atol=1e-5), f"{name} differs: {regenerate}"
