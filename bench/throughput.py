"""Throughput benchmark: tokens/s and peak memory of the training step, padded vs padding_free vs packing.

    python bench/throughput.py [--model builtin|llama-tiny|llama-0.5b|PATH] [--seq-lengths 128,512] [--steps 20]
                               [--warmup 4] [--batch-size 8] [--modes padded,padding_free,packing]
                               [--train lora,full] [--liger] [--repeats 1] [--set FIELD=VALUE ...]
                               [--require-cuda] [--write [FILE]] [--out FILE]

Each variant (sequence length x LoRA/full x mode [x Liger]) trains in a fresh subprocess (bench/throughput_child.py)
through sft_ui's own path, `sft_ui.worker.training.run(SFTConfig(...), ...)`, with an in-process Reporter that times
every step. Real tokens per second come from TRL's logged `num_tokens` (pad tokens excluded) between the end of the
warm-up steps and the last step; positions per second (pad tokens included) and the padding share come from
counting the collated batches. Peak memory: torch.cuda.max_memory_allocated on a GPU, the process's peak RSS on a
CPU. The variants of one group (same length, LoRA/full, Liger) run one after another, the mode order rotating each
round, and each is compared with the padded run of its own group and round (the median of the ratios over rounds).

`llama-0.5b` (and `llama-tiny`, for smoke checks) are randomly initialised Llamas made offline with the built-in
tokenizer and saved as local model folders under the data root, so they load like any local model. PATH is a local
model folder: it is hard-linked (copied across file systems) under the data root as models/<folder name>, so it loads as
a job's local model does, and nothing is written beside it.
Exits non-zero when a variant fails, or when a requested mode or Liger was not applied.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from common import link_model, load, machine, training_env
from throughput_child import RESULT_TAG
from throughput_setup import LLAMAS, prepare

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().parent / "throughput_child.py"
MODES: dict[str, dict[str, bool]] = {
    "padded": {},
    "padding_free": {"padding_free": True},
    "packing": {"packing": True},
}


def shown_command(argv: list[str]) -> str:
    """The options that shape the numbers (not where the data and the markdown go)."""
    shown, i = [], 0
    while i < len(argv):
        arg, i = argv[i], i + 1
        if arg in ("--out", "--data-root") or (arg == "--write" and i < len(argv) and not argv[i].startswith("-")):
            i += 1
        elif arg.split("=")[0] not in ("--out", "--data-root", "--write"):
            shown.append(arg)
    return " ".join(shown)


def versions() -> str:
    """The versions of the training stack."""
    found = []
    for name in ("torch", "transformers", "trl", "peft", "liger-kernel"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found)


def run_variant(spec: dict[str, Any], log_dir: Path, label: str, timeout: float) -> dict[str, Any]:
    """Run one variant in a fresh interpreter; its measurements, or {'error': ...} with the log's tail."""
    env = training_env()
    log = log_dir / f"{label}.log"
    began = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(CHILD), json.dumps(spec)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        output, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), -1
        output += f"\n(timed out after {timeout:.0f} s)"
    log.write_text(output)
    notes = sorted(
        {
            line.strip()
            for line in output.splitlines()
            if line.startswith("[sft-ui]")
            and not line.startswith(("[sft-ui] loading", "[sft-ui] training", "[sft-ui] saving"))
        }
    )
    found = [line for line in output.splitlines() if line.startswith(RESULT_TAG)]
    if code != 0 or not found:
        tail = " | ".join(line for line in output.strip().splitlines()[-4:])
        return {"error": f"exit {code}: {tail[-400:]}", "log": str(log), "notes": notes}
    result = json.loads(found[-1][len(RESULT_TAG) :])
    result.update(notes=notes, wall_s=time.monotonic() - began)
    return result


def check_applied(variant: dict[str, Any], result: dict[str, Any]) -> str:
    """Why the variant did not get what it asked for ('' when it did)."""
    if "error" in result:
        return result["error"]
    problems = []
    if variant["mode"] != "padded" and not result["flattened"]:
        problems.append(f"{variant['mode']} not applied: the batches still carry padding")
    if variant["mode"] == "padded" and result["flattened"]:
        problems.append("padded run got flattened batches")
    if variant["liger"] and not result["liger_modules"]:
        problems.append(
            "Liger requested but no Liger module in the model"
            + (f" ({'; '.join(result['notes'])})" if result["notes"] else "")
        )
    return "; ".join(problems)


def wrap(line: str) -> str:
    """A prose line wrapped at 118 characters, as in RESULTS.md; table rows, headings and items as they are."""
    return line if line.startswith(("|", "#", "- ")) else textwrap.fill(line, 118, break_on_hyphens=False)


def fmt_mem(mb: float) -> str:
    """MiB as '812 MiB' or '12.3 GiB'."""
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def report(args: argparse.Namespace, results: dict[tuple, list[dict]], groups: list[tuple], header: dict) -> str:
    """The markdown section: set-up, the table with ratios to the padded run of the same group and round."""
    device = next((r["device"] for rs in results.values() for r in rs if "device" in r), "?")
    precision = next((r["precision"] for rs in results.values() for r in rs if "precision" in r), "?")
    lines = [
        f"## Throughput ({header['date']})",
        "",
        f"Machine: {header['machine']}; ran on: {device}. Load average at the end: {header['load_end']}.",
        "",
        f"Command: `{header['command']}`",
        "",
        f"Model: {header['model']}; batch {args.batch_size} rows (packing: {args.batch_size} sequences of L), "
        f"{args.steps} steps, the first {args.warmup} not timed; precision {precision}; "
        f"{args.repeats} round(s); each variant a fresh process, modes interleaved within each group.",
        "",
        f"Data: {header['data']}",
        "",
        "Real tok/s counts tokens that are not padding (TRL's `num_tokens`); positions/s counts every position "
        "the model computed, padding included. Peak memory: "
        + (
            "torch.cuda.max_memory_allocated."
            if device != "cpu"
            else "the process's peak RSS (Python, torch and the data included, so differences matter more than levels)."
        )
        + " × padded: the median over rounds of the ratio to the padded run of the same group and round. ms/step: "
        "the median timed step (tok/s divides by the timed steps' total time).",
        "",
        "| L | train | liger | mode | real tok/s | × padded | positions/s | padding | ms/step | rows/step "
        "| peak memory | × padded | final loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    failures = []
    for group in groups:
        base_runs = results.get((*group, "padded"), [])
        for mode in args.modes:
            runs = results.get((*group, mode), [])
            good = [r for r in runs if "error" not in r]
            bad = [r for r in runs if r.get("problem")]
            failures += [f"L={group[0]} {group[1]} liger={group[2]} {mode}: {r['problem']}" for r in bad]
            cells = [str(group[0]), group[1], "on" if group[2] else "off", mode]
            if not good:
                lines.append("| " + " | ".join(cells + ["failed"] + [""] * 8) + " |")
                continue

            def med(key: str, rs: list[dict] = good) -> float:
                return statistics.median(r[key] for r in rs)

            ratios = [
                r["tokens_per_s"] / b["tokens_per_s"]
                for r, b in zip(runs, base_runs, strict=False)
                if "error" not in r and "error" not in b
            ]
            mem_ratios = [
                r["peak_mb"] / b["peak_mb"]
                for r, b in zip(runs, base_runs, strict=False)
                if "error" not in r and "error" not in b
            ]
            loss = good[-1]["loss"]
            cells += [
                f"{med('tokens_per_s'):,.0f}",
                f"{statistics.median(ratios):.2f}" if ratios else "",
                f"{med('positions_per_s'):,.0f}",
                f"{med('padding'):.0%}",
                f"{med('step_ms'):.1f}",
                f"{med('rows_per_step'):.1f}",
                fmt_mem(med("peak_mb")),
                f"{statistics.median(mem_ratios):.2f}" if mem_ratios else "",
                f"{loss:.3f}" if isinstance(loss, float) else "?",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({n for rs in results.values() for r in rs for n in r.get("notes", [])})
    if notes:
        lines += ["", "Notes from training: " + "; ".join(f"`{n}`" for n in notes)]
    if failures:
        lines += ["", "**Failed or not applied:**", *[f"- {f}" for f in failures]]
    return "\n".join(wrap(line) for line in lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin", help="builtin, llama-tiny, llama-0.5b, or a local model folder")
    p.add_argument("--seq-lengths", default=None, help="comma-separated (default 128,512; llama-0.5b 512,2048)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=4, help="steps at the start that are not timed")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--modes", default="padded,padding_free,packing")
    p.add_argument("--train", default="lora,full", help="lora, full or both")
    p.add_argument("--liger", action="store_true", help="also run every variant with use_liger_kernel")
    p.add_argument("--repeats", type=int, default=1, help="rounds over the whole matrix")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="another SFTConfig field")
    p.add_argument("--require-cuda", action="store_true", help="fail unless the runs used a GPU")
    p.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "sft-ui-bench-throughput")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per variant")
    p.add_argument(
        "--write",
        nargs="?",
        const=str(ROOT / "bench" / "RESULTS.md"),
        default=None,
        help="append the markdown to this file (default bench/RESULTS.md)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the markdown to this file (replacing it)")
    args = p.parse_args(argv)
    if args.seq_lengths is None:
        args.seq_lengths = "512,2048" if args.model == "llama-0.5b" else "128,512"
    args.seq_lengths = [int(x) for x in args.seq_lengths.split(",") if x]
    args.modes = [m for m in args.modes.split(",") if m]
    args.train = [t for t in args.train.split(",") if t]
    if unknown := [m for m in args.modes if m not in MODES] + [t for t in args.train if t not in ("lora", "full")]:
        p.error(f"unknown mode or train kind: {', '.join(unknown)}")
    if "padded" not in args.modes:
        args.modes.insert(0, "padded")  # the baseline every ratio needs
    if args.warmup >= args.steps - 1:
        p.error("--steps must be at least --warmup + 2")
    return args


def main(argv: list[str] | None = None) -> int:
    """Prepare the model and data, run the matrix, print (and write) the markdown; 1 if anything failed."""
    args = parse_args(argv)
    header = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{machine()}; {versions()}",
        "command": "python bench/throughput.py " + shown_command(sys.argv[1:] if argv is None else argv),
    }
    data_root = args.data_root.resolve()
    if args.model not in ("builtin", *LLAMAS):
        folder = Path(args.model).resolve()
        if not (folder / "config.json").is_file():
            print(f"--model: {args.model} is not builtin, a llama-* name or a model folder", file=sys.stderr)
            return 2
    data_root.mkdir(parents=True, exist_ok=True)
    if args.model not in ("builtin", *LLAMAS):
        link_model(folder, data_root / "models" / folder.name)  # a local model loads from under the data root
    base_model, files, header["data"] = prepare(args.model, args.seq_lengths, args.steps, args.batch_size, data_root)
    header["model"] = {"builtin": "builtin:tiny-gpt2 (GPT-2, 2 layers, 128 wide)"}.get(
        args.model, f"{args.model} ({base_model} under the data root)" if args.model in LLAMAS else base_model
    )
    if args.model in LLAMAS:
        header["model"] += ", randomly initialised: " + ", ".join(f"{k} {v}" for k, v in LLAMAS[args.model].items())
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except ValueError:
            extra[key] = value
    groups = [
        (L, t, liger)
        for L in args.seq_lengths
        for t in args.train
        for liger in ([False, True] if args.liger else [False])
    ]
    results: dict[tuple, list[dict]] = {}
    log_dir = data_root / "bench-throughput" / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)  # only this run's logs
    log_dir.mkdir(parents=True)
    failed = False
    for round_ in range(args.repeats):
        for group in groups:
            seq_len, train, liger = group
            shift = round_ % len(args.modes)
            for mode in args.modes[shift:] + args.modes[:shift]:
                config = {
                    "base_model": base_model,
                    "dataset_name": files[seq_len],
                    "dataset_format": "alpaca",
                    "max_seq_length": seq_len,
                    "max_steps": args.steps,
                    "batch_size": args.batch_size,
                    "use_lora": train == "lora",
                    "logging_steps": 1,
                    "save_steps": 0,
                    **MODES[mode],
                    **extra,
                }
                if liger:
                    config["use_liger_kernel"] = True
                spec = {"config": config, "data_root": str(data_root), "warmup": args.warmup}
                label = f"r{round_}-L{seq_len}-{train}-{mode}" + ("-liger" if liger else "")
                result = run_variant(spec, log_dir, label, args.timeout)
                variant = {"mode": mode, "liger": liger}
                result["problem"] = check_applied(variant, result)
                if not result["problem"] and args.require_cuda and result["device"] == "cpu":
                    result["problem"] = "ran on the CPU but --require-cuda was given"
                failed |= bool(result["problem"])
                results.setdefault((*group, mode), []).append(result)
                shown = (
                    f"{result['tokens_per_s']:,.0f} tok/s, {result['step_ms']:.0f} ms/step, peak "
                    f"{fmt_mem(result['peak_mb'])}"
                    if "error" not in result
                    else "FAILED"
                )
                print(f"{label}: {shown}" + (f" [{result['problem']}]" if result["problem"] else ""), flush=True)
    header["load_end"] = load()
    text = report(args, results, groups, header)
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    if failed:
        print(f"FAILED: some variants failed or did not apply what they asked for; logs in {log_dir}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
