"""Throughput options: padding-free batches, packing, Liger, data loader workers, and their guards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from sft_ui.builtin import builtin_model_path
from sft_ui.config import SFTConfig
from sft_ui.manager import JobManager
from sft_ui.status import ENDED
from tests.helpers import wait_for


def _train(manager: JobManager, **config: object) -> dict:
    job_id = manager.create_job({"max_steps": 8, "logging_steps": 1, "lora_dropout": 0.0, **config})
    manager.start_job(job_id)
    record = wait_for(manager, job_id, ENDED, timeout=300)
    record["points"] = manager.get_metrics(job_id)
    record["log"] = manager.get_log(job_id)
    return record


def test_padding_free_computes_the_same_loss_and_packing_fills_the_steps(tmp_path: Path) -> None:
    manager = JobManager(data_dir=tmp_path / "data", max_concurrent_jobs=3).start()
    try:
        padded = _train(manager)
        free = _train(manager, padding_free=True, dataloader_num_workers=1)
        packed = _train(manager, packing=True)
        short = _train(manager, padding_free=True, max_seq_length=16)
    finally:
        manager.shutdown()
    for record in (padded, free, packed, short):
        assert record["status"] == "completed", (record["error"], record["log"][-3000:])
    # Same rows in the same order: without pad tokens the model sees exactly what it saw with them.
    assert free["points"][0]["loss"] == pytest.approx(padded["points"][0]["loss"], rel=1e-4)
    assert free["points"][-1]["num_tokens"] == padded["points"][-1]["num_tokens"]
    # Packing puts several rows into each max_seq_length sequence: many more tokens per step.
    assert packed["points"][-1]["num_tokens"] > 3 * padded["points"][-1]["num_tokens"]
    assert packed["points"][-1]["loss"] < packed["points"][0]["loss"]
    # Padding-free rows are still cut to max_seq_length (TRL leaves them whole; sft-ui cuts them).
    assert short["points"][-1]["num_tokens"] <= 8 * 8 * 16


def test_a_model_whose_attention_mixes_packed_rows_is_refused_by_name(manager: JobManager,
                                                                     builtin_cache: Path) -> None:
    from transformers import AutoModelForCausalLM, OPTConfig

    builtin = builtin_model_path(builtin_cache)
    folder = manager.store_root() / "models" / "tiny-opt"
    config = OPTConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, ffn_dim=64,
                       word_embed_proj_dim=32, max_position_embeddings=256)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(builtin / name, folder / name)
    record = _train(manager, base_model="models/tiny-opt", padding_free=True)
    assert record["status"] == "failed"
    assert record["error"].startswith("padding_free: opt's attention"), record["error"]
    assert "turn padding_free and packing off" in record["error"]


def test_liger_without_a_gpu_trains_without_it_and_says_so(manager: JobManager) -> None:
    record = _train(manager, use_liger_kernel=True, tf32=True)
    assert record["status"] == "completed", (record["error"], record["log"][-3000:])
    assert record["result"]["notes"] == ["use_liger_kernel: needs a GPU; training without it"]
    assert "use_liger_kernel: needs a GPU" in record["log"]


@pytest.mark.parametrize(("field", "value"), [("num_processes", 0), ("num_processes", 10_000),
                                              ("dataloader_num_workers", -1), ("padding_free", "maybe")])
def test_performance_settings_out_of_bounds_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        SFTConfig(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_a_second_job_on_the_same_rows_skips_tokenizing(manager: JobManager, builtin_cache: Path) -> None:
    shutil.rmtree(builtin_cache / "datasets", ignore_errors=True)  # so the first job tokenizes, on any rerun too
    config = {"max_samples": 777, "max_steps": 2}
    first = _train(manager, **config)
    second = _train(manager, **config)
    for record in (first, second):
        assert record["status"] == "completed", (record["error"], record["log"][-3000:])
    assert "Tokenizing train dataset" in first["log"]
    assert "Tokenizing train dataset" not in second["log"], "TRL's tokenizing came from the cache"
    assert second["result"]["train_rows"] == 777
    assert any((builtin_cache / "datasets").iterdir())
