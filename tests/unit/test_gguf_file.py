"""Reading a GGUF header without torch: what the server checks before an import worker starts."""

from pathlib import Path

import pytest

from sft_ui.gguf_file import GGUFError, check_architecture, read_header
from tests.helpers import write_gguf

LLAMA = {"token_embd.weight": (64, 100), "blk.0.attn_q.weight": (64, 64), "output_norm.weight": (64,)}


def test_the_header_names_the_architecture(tmp_path: Path) -> None:
    header = read_header(write_gguf(tmp_path / "m.gguf", "llama", LLAMA, "{{ messages }}"))
    assert header["architecture"] == "llama"


def test_the_parameter_count_comes_from_the_tensor_shapes(tmp_path: Path) -> None:
    header = read_header(write_gguf(tmp_path / "m.gguf", "llama", LLAMA))
    assert header["parameters"] == 64 * 100 + 64 * 64 + 64


def test_a_chat_template_is_noticed(tmp_path: Path) -> None:
    assert read_header(write_gguf(tmp_path / "m.gguf", "llama", LLAMA, "{{ messages }}"))["has_chat_template"]


def test_no_chat_template_is_noticed(tmp_path: Path) -> None:
    assert not read_header(write_gguf(tmp_path / "m.gguf", "llama", LLAMA))["has_chat_template"]


def test_a_supported_architecture_gives_its_model_type(tmp_path: Path) -> None:
    header = read_header(write_gguf(tmp_path / "m.gguf", "qwen2moe", LLAMA))
    assert check_architecture(header, "m.gguf") == "qwen2_moe"


def test_an_unsupported_architecture_is_named_with_the_ones_that_work(tmp_path: Path) -> None:
    header = read_header(write_gguf(tmp_path / "m.gguf", "rwkv6", LLAMA))
    with pytest.raises(GGUFError, match=r"^gguf: m.gguf holds a 'rwkv6' model.*llama.*qwen2") as error:
        check_architecture(header, "m.gguf")
    assert "transformers cannot read" in str(error.value)


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(GGUFError, match="is not a GGUF file"):
        read_header(tmp_path / "m.gguf")


def test_a_cut_short_file_is_refused(tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "m.gguf", "llama", LLAMA).read_bytes()
    (tmp_path / "m.gguf").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(GGUFError, match="cut short or damaged"):
        read_header(tmp_path / "m.gguf")
