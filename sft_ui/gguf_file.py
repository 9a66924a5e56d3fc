"""What a GGUF file holds, read from its header alone (no torch, no `gguf` package): the server checks an import
with it before a worker spends minutes and gigabytes on it."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import IO, Any

MAGIC = b"GGUF"
# GGUF architecture names transformers 5.24 can turn into a trainable model (modeling_gguf_pytorch_utils'
# GGUF_SUPPORTED_ARCHITECTURES less the encoder-only t5/umt5; a test keeps the two lists equal) and the
# model_type each becomes.
ARCHITECTURES: dict[str, str] = {
    "llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen2moe": "qwen2_moe", "gpt-oss": "gpt_oss",
    "lfm2": "lfm2", "qwen3": "qwen3", "qwen3moe": "qwen3_moe", "falcon": "falcon", "phi3": "phi3",
    "bloom": "bloom", "stablelm": "stablelm", "gpt2": "gpt2", "starcoder2": "starcoder2", "mamba": "mamba",
    "nemotron": "nemotron", "gemma2": "gemma2", "gemma3": "gemma3", "gemma4": "gemma4", "deci": "deci",
    "minimax-m2": "minimax_m2",
}
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_KEEP = ("general.architecture", "general.name", "general.size_label", "general.file_type",
         "tokenizer.chat_template")
_MAX_STRING = 64 << 20  # a longer "string" means a damaged header, not a chat template


class GGUFError(ValueError):
    """A file that is not a GGUF that can be imported, in one line naming the field `gguf`."""


def read_header(path: Path) -> dict[str, Any]:
    """architecture, name, size_label, file_type, has_chat_template, parameters (from the tensor shapes)."""
    try:
        with open(path, "rb", buffering=1 << 20) as fh:
            return _parse(fh)
    except (struct.error, UnicodeDecodeError, EOFError) as exc:
        raise GGUFError(f"gguf: {path.name} is cut short or damaged ({type(exc).__name__})") from None


def check_architecture(header: dict[str, Any], filename: str) -> str:
    """The transformers model_type of the GGUF's architecture; GGUFError naming it and the ones that work."""
    arch = str(header.get("architecture") or "")
    if arch not in ARCHITECTURES:
        raise GGUFError(f"gguf: {filename} holds a {arch or 'unnamed'!r} model, which transformers cannot read "
                        f"from GGUF; these can be imported: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch]


def _parse(fh: IO[bytes]) -> dict[str, Any]:
    if fh.read(4) != MAGIC:
        raise GGUFError(f"gguf: {Path(fh.name).name} is not a GGUF file (it does not start with 'GGUF')")
    (version,) = _unpack(fh, "<I")
    if version < 2:
        raise GGUFError(f"gguf: GGUF version {version} is too old; convert it again with a recent llama.cpp")
    tensors, kv_count = _unpack(fh, "<QQ")
    found: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _string(fh)
        (kind,) = _unpack(fh, "<I")
        found[key] = _value(fh, kind, keep=key in _KEEP)
    parameters = 0
    for _ in range(tensors):
        _string(fh)
        (dims,) = _unpack(fh, "<I")
        parameters += math.prod(_unpack(fh, f"<{dims}Q"))
        _unpack(fh, "<IQ")  # type, offset
    return {"architecture": found.get("general.architecture"), "name": found.get("general.name"),
            "size_label": found.get("general.size_label"), "file_type": found.get("general.file_type"),
            "has_chat_template": bool(found.get("tokenizer.chat_template")), "parameters": parameters,
            "tensors": tensors}


def _unpack(fh: IO[bytes], fmt: str) -> tuple[Any, ...]:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)


def _string(fh: IO[bytes], keep: bool = True) -> str:
    (length,) = _unpack(fh, "<Q")
    if length > _MAX_STRING:
        raise EOFError
    if not keep:
        fh.seek(length, 1)
        return ""
    data = fh.read(length)
    if len(data) != length:
        raise EOFError
    return data.decode("utf-8")


def _value(fh: IO[bytes], kind: int, keep: bool) -> Any:
    """One metadata value; arrays (the vocabulary) are skipped, strings kept only when asked for."""
    if kind in _SCALARS:
        return _unpack(fh, _SCALARS[kind])[0]
    if kind == _STRING:
        return _string(fh, keep)
    if kind == _ARRAY:
        item, count = _unpack(fh, "<IQ")
        if item in _SCALARS:
            fh.seek(struct.calcsize(_SCALARS[item]) * count, 1)
        else:
            for _ in range(count):
                _value(fh, item, keep=False)
        return None
    raise EOFError
