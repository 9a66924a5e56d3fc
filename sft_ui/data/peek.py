"""Cheap looks into local data files: the first rows, the row count and the columns, streamed (never a whole file).

Used by the upload library (listing) and by create_job (Start checks what Preview checks); no datasets import.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sft_ui.config import SFTConfig
from sft_ui.data.sources import LOCAL_SUFFIXES, DataError, text_blocks
from sft_ui.errors import one_line
from sft_ui.settings import resolve_inside

PEEK_ROWS = 50  # rows read to check a file at Start
SUFFIXES = LOCAL_SUFFIXES
_CHUNK = 1 << 16
_WHOLE_JSON_LIMIT = 64 << 20  # a .json that is one object (columns of lists) is read whole only up to this size


class Unreadable(ValueError):
    """A file whose rows cannot be read; the message is the cause, without a field name."""


def rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a local data file, one at a time (a .txt file: one {"text"} row per blank-line-separated block)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            yield from _parquet_rows(path)
            return
        with path.open(encoding="utf-8", newline="" if suffix == ".csv" else None) as file:
            if suffix == ".csv":
                yield from _csv_rows(file)
            elif suffix == ".txt":
                yield from ({"text": block} for block in text_blocks(file))
            else:
                yield from _json_rows(file, path)
    except Unreadable:
        raise
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise Unreadable(one_line(exc, 200)) from exc
    except Exception as exc:  # pyarrow's errors: the file's fault
        raise Unreadable(one_line(exc, 200)) from exc


def first_rows(path: Path, n: int = PEEK_ROWS) -> list[dict[str, Any]]:
    """Up to `n` rows from the start of the file."""
    out = []
    for row in rows(path):
        out.append(row)
        if len(out) >= n:
            break
    return out


def count_rows(path: Path) -> int:
    """How many rows the file holds: parquet from its metadata, the others by streaming through it once."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception as exc:  # pyarrow's errors: the file's fault
            raise Unreadable(one_line(exc, 200)) from exc
    return sum(1 for _ in rows(path))


def columns(sample: list[dict[str, Any]]) -> list[str]:
    """Every column the sample rows have, in the order first seen."""
    seen: dict[str, None] = {}
    for row in sample:
        seen.update(dict.fromkeys(row))
    return list(seen)


def check_source(config: SFTConfig, data_root: Path) -> None:
    """Refuse at Start a local data file that Preview would refuse: unreadable, empty, or without the format's
    columns (DataError naming dataset_name or dataset_format). Built-in and hub ids, and files not there, pass."""
    from sft_ui.data import FORMAT_COLUMNS, detect_format

    name = config.dataset_name.strip()
    if not name.lower().endswith(SUFFIXES):
        return
    try:
        path = resolve_inside(data_root, name, "dataset_name")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if not path.is_file():
        return  # the path rules allow a file that is not there yet; the job then says where the data root is
    try:
        sample = first_rows(path)
    except Unreadable as exc:
        raise DataError(f"dataset_name: could not read {name}: {exc}") from None
    if not sample:
        raise DataError(f"dataset_name: {name!r} has no rows")
    mapping = getattr(config, "column_map", None) or {}
    found = [mapping.get(col, col) for col in columns(sample)]
    if config.dataset_format == "auto":
        try:
            detect_format(found)
        except DataError as exc:
            raise DataError(f"dataset_name: {name!r} has no usable columns; {exc}") from None
        return
    needed = FORMAT_COLUMNS.get(config.dataset_format, ())
    if not all(col in found for col in needed):
        raise DataError(f"dataset_format: {config.dataset_format} needs the columns {list(needed)} but {name!r} has "
                        f"{sorted(found)}; pick the format that matches or auto")


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        yield from batch.to_pylist()


def _csv_rows(file: IO[str]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(file)
    header = next(reader, None)
    if not header:
        return
    for record in reader:
        if record:
            yield dict(zip(header, record + [""] * (len(header) - len(record)), strict=False))


def _json_rows(file: IO[str], path: Path) -> Iterator[dict[str, Any]]:
    """A JSON array of objects streamed element by element, JSON lines, or (small files) one object of columns."""
    head = file.read(_CHUNK)
    start = len(head) - len(head.lstrip())
    if start == len(head):
        return
    if head[start] == "[":
        yield from _array_rows(file, head, start + 1)
        return
    file.seek(0)
    first = True
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if first:  # not JSON lines: a pretty-printed object
                yield from _whole_object(path)
                return
            raise Unreadable(f"line {number} is not JSON") from None
        first = False
        if not isinstance(row, dict):
            raise Unreadable(f"line {number} is not a JSON object")
        yield row


def _array_rows(file: IO[str], buffer: str, pos: int) -> Iterator[dict[str, Any]]:
    """The elements of a top-level JSON array, decoded one at a time from a growing buffer."""
    decoder = json.JSONDecoder()
    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n,":
            pos += 1
        if pos < len(buffer) and buffer[pos] == "]":
            return
        try:
            row, end = decoder.raw_decode(buffer, pos)
        except ValueError:
            more = file.read(_CHUNK)
            if not more:
                raise Unreadable("the JSON array is cut short or malformed") from None
            buffer, pos = buffer[pos:] + more, 0
            continue
        if not isinstance(row, dict):
            raise Unreadable("the JSON array holds something other than objects")
        yield row
        buffer, pos = buffer[end:], 0
        if len(buffer) < _CHUNK:
            buffer += file.read(_CHUNK)


def _whole_object(path: Path) -> Iterator[dict[str, Any]]:
    """A .json file that is one object of equal-length column lists."""
    if path.stat().st_size > _WHOLE_JSON_LIMIT:
        raise Unreadable("not a JSON array or JSON lines")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not data or not all(isinstance(v, list) for v in data.values()):
        raise Unreadable("not a JSON array of objects, JSON lines, or an object of column lists")
    names = list(data)
    for values in zip(*(data[name] for name in names), strict=False):
        yield dict(zip(names, values, strict=True))
