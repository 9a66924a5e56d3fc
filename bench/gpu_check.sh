#!/usr/bin/env bash
# GPU check: train a randomly initialised ~0.5B Llama through sft_ui's own training path on this machine's GPU,
# padded vs padding_free vs packing, LoRA vs full, with and without Liger (when liger-kernel is installed), and
# report tokens/s and peak memory. Needs no network (the model and data are made here).
#
#   bash bench/gpu_check.sh [--tiny] [more bench/throughput.py options, e.g. --steps 30 --seq-lengths 1024]
#
# Python: $PYTHON if set; else $VENV (default .venv) if it imports the training stack; else the first python3 on
# PATH that does; else a new $VENV (with the system's site packages, so a preinstalled CUDA torch is reused) and
# `pip install -r requirements.txt` (needs a package registry). liger-kernel is installed into a venv when a GPU is
# present and a registry answers; otherwise the Liger runs are skipped (GPU_CHECK_LIGER=0 skips them anyway).
# The markdown goes to $OUT/gpu_check.md when $OUT is set, else bench/gpu_check.md, and to stdout; the variants'
# logs to gpu_check_logs/ beside it when something fails. Exits non-zero when any training run fails or a mode is
# not applied. --tiny (llama-tiny, 4 steps) with GPU_CHECK_ALLOW_CPU=1 is a dry run of the whole path on a CPU.
set -euo pipefail

cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

tiny=0
args=()
for arg in "$@"; do
  if [[ "$arg" == "--tiny" ]]; then tiny=1; else args+=("$arg"); fi
done
allow_cpu="${GPU_CHECK_ALLOW_CPU:-0}"
venv="${VENV:-.venv}"
report="${OUT:+$OUT/gpu_check.md}"
report="${report:-bench/gpu_check.md}"
data_root="${GPU_CHECK_DATA_ROOT:-${TMPDIR:-/tmp}/sft-ui-gpu-check}"

say() { echo "[gpu_check] $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
stack_ok() { "$1" -c 'import torch, transformers, trl, peft, datasets, pydantic' >/dev/null 2>&1; }

# --- The GPU (before any install, so a machine without one fails fast)
gpu="none"
if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
  gpu="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"
  say "nvidia-smi: $gpu"
elif [[ "$allow_cpu" != 1 ]]; then
  die "nvidia-smi does not answer: no NVIDIA GPU or driver here (GPU_CHECK_ALLOW_CPU=1 for a dry run on a CPU)"
fi

# --- Python with the training stack
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
  stack_ok "$py" || die "PYTHON=$py cannot import torch, transformers, trl, peft, datasets and pydantic"
elif [[ -x "$venv/bin/python" ]] && stack_ok "$venv/bin/python"; then
  py="$venv/bin/python"
elif command -v python3 >/dev/null && stack_ok "$(command -v python3)"; then
  py="$(command -v python3)"
else
  say "creating $venv and installing requirements.txt"
  python3 -m venv --system-site-packages "$venv" || die "could not create the venv $venv"
  "$venv/bin/python" -m pip install -q -r requirements.txt ||
    die "pip install -r requirements.txt failed (no registry?); set PYTHON to an interpreter that has the stack"
  py="$venv/bin/python"
fi
say "python: $py ($("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"

cuda="$("$py" -c 'import torch; print(int(torch.cuda.is_available()))')"
if [[ "$cuda" != 1 && "$allow_cpu" != 1 ]]; then
  die "torch $("$py" -c 'import torch; print(torch.__version__)') sees no CUDA device (a CPU-only build?)"
fi

# --- Liger: install it when we can (into a venv only), use it when it imports
liger=0
if [[ "${GPU_CHECK_LIGER:-1}" == 1 && "$cuda" == 1 ]]; then
  if ! "$py" -c 'import liger_kernel' >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
    timeout 300 "$py" -m pip install -q -c requirements.txt liger-kernel >/dev/null 2>&1 || true
  fi
  if "$py" -c 'import liger_kernel' >/dev/null 2>&1; then liger=1; fi
fi
say "liger-kernel: $([[ $liger == 1 ]] && echo "installed, runs with and without it" || echo "not installed, skipped")"

# --- The benchmark
if [[ "$tiny" == 1 ]]; then
  bench=(--model llama-tiny --seq-lengths 64,128 --steps 4 --warmup 1)
else
  bench=(--model llama-0.5b --seq-lengths 512,2048 --steps 20 --warmup 5)
fi
bench+=(--modes padded,padding_free,packing --train lora,full --data-root "$data_root")
if [[ "$liger" == 1 ]]; then bench+=(--liger); fi
if [[ "$allow_cpu" != 1 ]]; then bench+=(--require-cuda); fi
mkdir -p "$(dirname "$report")"
part="$(mktemp)"
trap 'rm -f "$part"' EXIT
say "running: python bench/throughput.py ${bench[*]} ${args[*]:-}"
rc=0
"$py" bench/throughput.py "${bench[@]}" "${args[@]}" --out "$part" || rc=$?

{
  echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "GPU (nvidia-smi): $gpu. liger-kernel: $([[ $liger == 1 ]] && echo installed || echo "not installed")."
  echo "Result: $([[ $rc == 0 ]] && echo "passed" || echo "**FAILED** (exit $rc)")."
  echo
  if [[ -s "$part" ]]; then cat "$part"; else echo "(no results: bench/throughput.py exited $rc early)"; fi
} >"$report"
if [[ "$rc" != 0 && -d "$data_root/bench-throughput/logs" ]]; then
  rm -rf "$(dirname "$report")/gpu_check_logs"
  cp -r "$data_root/bench-throughput/logs" "$(dirname "$report")/gpu_check_logs"
fi
say "wrote $report"
[[ "$rc" == 0 ]] || die "bench/throughput.py exited $rc; see $report"
say "passed"
