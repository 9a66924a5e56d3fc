"""Pure formatting of one job's detail (no manager calls): the shown log, loss smoothing, phase durations, the
failure card, the metrics table, the phone's job cards and the next step after completion."""

import math
import re
from typing import Any

from sft_ui.escaping import escape
from sft_ui.status import JobStatus

METRICS_ROWS = 15  # the metrics table shows the newest logged points
LOG_LINES = 80  # the shown log's tail, after filtering
# A tqdm bar: " 40%|████      | 12/30 [00:01<00:02,  8.1it/s]", or one without a percentage ("12/? [00:01, ...").
_TQDM = re.compile(r"^\s*(\S.*?:\s*)?\d{1,3}%\|.*\|\s*\d+/\d+|\|\s*\d+/[\d?]+\s*\[\d+:\d+")
# The Trainer's own print of each log: "{'loss': 2.31, 'grad_norm': 1.2, ...}".
_DICT_LINE = re.compile(r"^\s*\{'[^']+': .*\}\s*$")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


# --- the log ---
def filter_log(text: str, max_lines: int = LOG_LINES) -> str:
    """The log as a person reads it: progress bars and the Trainer's raw dict lines left out, carriage-return
    rewrites collapsed to what a terminal would show, the last `max_lines` lines."""
    shown: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        parts = [part for part in raw.split("\r") if part.strip()]
        line = parts[-1] if parts else ""
        if _TQDM.search(line) or _DICT_LINE.match(line) or (not line and shown and not shown[-1]):
            continue
        shown.append(line.rstrip())
    return "\n".join(shown[-max_lines:]).strip("\n")


def last_traceback(log: str) -> str:
    """The last Python traceback in the log (with the exceptions chained before it), or ''."""
    lines = filter_log(log, max_lines=10_000).split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(_TRACEBACK)]
    if not starts:
        return ""
    first = starts[-1]
    for earlier in reversed(starts[:-1]):  # a chain: "During handling of the above exception ..." joins them
        if not any(line.startswith(_CHAINED) for line in lines[earlier:first]):
            break
        first = earlier
    end = len(lines)
    for i in range(starts[-1] + 1, len(lines)):
        if lines[i].startswith("[sft-ui]"):
            end = i
            break
    return "\n".join(lines[first:end]).strip()


# --- the loss plot ---
def ema(values: list[float], smoothing: float) -> list[float]:
    """Exponential moving average with weight `smoothing` (0: the values; 0.99: very smooth), bias-corrected at
    the start so that the first points are not pulled towards 0 (as TensorBoard smooths)."""
    weight = min(max(float(smoothing), 0.0), 0.999)
    if weight == 0:
        return list(values)
    out, average = [], 0.0
    for n, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** n))
    return out


# --- phases ---
PHASE_NAMES = {"loading_model": "loading model", "loading_data": "loading data"}


def phase_durations(phase_seconds: dict[str, Any] | None) -> list[tuple[str, float]]:
    """(phase, seconds it took) in order, from the worker's phase_seconds, which holds when each phase BEGAN
    (seconds since the worker took the job) and 'finished'; the time before the first phase is 'starting'."""
    begins = sorted((float(t), name) for name, t in (phase_seconds or {}).items() if isinstance(t, int | float))
    if len(begins) < 2:
        return []
    out = []
    if begins[0][0] >= 0.05 and begins[0][1] != "starting":
        out.append(("starting", begins[0][0]))
    for (began, name), (ended, _) in zip(begins, begins[1:], strict=False):
        out.append((PHASE_NAMES.get(name, name.replace("_", " ")), ended - began))
    return out


def phases_text(phase_seconds: dict[str, Any] | None) -> str:
    """'loading model 3.1 s, training 18.0 s, saving 0.4 s' ('' when unknown)."""
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phase_durations(phase_seconds))


def result_view(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The result as shown: phase_seconds (begin times) replaced by each phase's duration."""
    if not result:
        return result
    shown = {k: v for k, v in result.items() if k != "phase_seconds"}
    durations = phase_durations(result.get("phase_seconds"))
    if durations:
        shown["phase_durations"] = {name: f"{seconds:.1f} s" for name, seconds in durations}
    return shown


# --- a failure ---
def what_to_do(error: str, resumable: bool = False, fields: tuple[str, ...] = ()) -> str:
    """One sentence on what a person can do about `error` (a failed job's one-line cause)."""
    low = error.lower()
    field = error.split(":", 1)[0].strip() if ":" in error else ""
    if "out of memory" in low:
        advice = "Click “Use as new config”, make the run smaller as the message says, and start it again."
    elif "not found under the data root" in low or "no such file" in low:
        advice = ("Upload the file in the Data tab (uploads go to the data root), then click “Use as new config”, "
                  "pick it in dataset_name and start again.")
    elif any(word in low for word in ("offline", "hub", "connection", "resolve", "huggingface.co", "network")):
        advice = ("This machine could not reach the Hugging Face Hub: pick a built-in or local model and data set "
                  "(“Use as new config”), or run where the Hub is reachable.")
    elif field in fields:
        advice = f"Click “Use as new config”, change {field} in the form, and start again."
    elif "interrupted" in low:
        advice = "The server stopped while it ran: start it again with “Use as new config”."
    else:
        advice = ("Read the traceback below (the full log can be downloaded), fix the cause, then click "
                  "“Use as new config” to start again.")
    if resumable:
        advice += " Or click Resume to continue from its last checkpoint."
    return advice


def error_card(error: str | None, log: str = "", resumable: bool = False, fields: tuple[str, ...] = ()) -> str:
    """A failed job's card: the one-line cause, what to do, and the traceback folded away ('' without an error)."""
    if not error:
        return ""
    trace = last_traceback(log)
    folded = (f'<details style="margin-top:6px"><summary>Traceback</summary>'
              f'<pre style="white-space:pre-wrap;font-size:0.8em;max-height:320px;overflow:auto">{escape(trace)}'
              f"</pre></details>") if trace else ""
    return (f'<div id="job-failure" class="sft-failure" style="background:#fee2e2;color:#7f1d1d;'
            f'border:1px solid #fca5a5;border-radius:8px;padding:10px 12px">'
            f'<div><b>Failed:</b> <span class="sft-cause">{escape(error)}</span></div>'
            f'<div style="margin-top:4px"><b>What to do:</b> {escape(what_to_do(error, resumable, fields))}</div>'
            f"{folded}</div>")


# --- the metrics table ---
METRIC_COLUMNS = ("step", "loss", "lr", "grad norm", "tokens/s", "elapsed")


def metric_rows(points: list[dict[str, Any]], limit: int = METRICS_ROWS) -> list[list[str]]:
    """The newest `limit` training points (those with a loss) as rows of METRIC_COLUMNS, oldest first;
    tokens/s comes from the growth of num_tokens since the point before."""
    rows = []
    before: dict[str, Any] | None = None
    for point in points:
        if "loss" not in point:  # an eval point
            continue
        loss = "nan" if point["loss"] is None else _num(point["loss"], "{:.4g}")  # None: a diverged loss
        rows.append([str(point.get("step", "")), loss,
                     _num(point.get("learning_rate"), "{:.2e}"), _num(point.get("grad_norm"), "{:.3g}"),
                     _num(_rate(before, point), "{:,.0f}"), _seconds(point.get("time"))])
        before = point
    return rows[-limit:]


def _rate(before: dict[str, Any] | None, point: dict[str, Any]) -> float | None:
    """Tokens per second between two logged points (from the start for the first one)."""
    tokens, seconds = point.get("num_tokens"), point.get("time")
    if not isinstance(tokens, int | float) or not isinstance(seconds, int | float):
        return None
    if before is not None and isinstance(before.get("num_tokens"), int | float) and \
            isinstance(before.get("time"), int | float):
        tokens, seconds = tokens - before["num_tokens"], seconds - before["time"]
    return tokens / seconds if seconds > 0 and tokens >= 0 else None


def _num(value: Any, pattern: str) -> str:
    """A number formatted ('' when missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return pattern.format(value) if math.isfinite(value) else "nan"


def _seconds(value: Any) -> str:
    """Elapsed seconds as '12.3 s' or '4m 05s'."""
    if not isinstance(value, int | float):
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def metrics_table_html(points: list[dict[str, Any]]) -> str:
    """The metrics table (the newest points, the last row the newest), or a line saying none were logged yet."""
    rows = metric_rows(points)
    if not rows:
        return '<p id="metrics-table" class="sft-none">No training step logged yet.</p>'
    head = "".join(f"<th>{name}</th>" for name in METRIC_COLUMNS)
    body = "".join(f'<tr data-step="{escape(row[0])}">' + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f'<table id="metrics-table" class="sft-metrics"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


# --- the phone's job list ---
_STATUS_COLORS = {JobStatus.RUNNING: "#f97316", JobStatus.COMPLETED: "#16a34a", JobStatus.FAILED: "#dc2626",
                  JobStatus.STOPPED: "#6b7280", JobStatus.PENDING: "#2563eb"}


def job_cards_html(rows: list[dict[str, str]], selected: str | None = None) -> str:
    """One card per job (name, status, progress, loss) for a narrow screen; a tap selects the job."""
    if not rows:
        return '<p class="sft-none">No jobs yet.</p>'
    cards = []
    for row in rows:
        color = _STATUS_COLORS.get(row["status"].split(" ")[0], "#6b7280")
        mark = " sft-card-selected" if row["id"] == selected else ""
        loss = f" · loss {escape(row['loss'])}" if row["loss"] else ""
        cards.append(
            f'<div class="sft-card{mark}" role="button" tabindex="0" data-job="{escape(row["id"])}" '
            f'title="{escape(row["name"] or row["id"])}">'
            f'<div class="sft-card-name">{escape(row["name"] or "(unnamed)")}</div>'
            f'<div class="sft-card-facts"><span style="color:{color};font-weight:600">{escape(row["status"])}</span>'
            f" · step {escape(row['step'])}{loss}</div></div>")
    return f'<div class="sft-cards">{"".join(cards)}</div>'


# --- after completion ---
def next_step_html(status: str, has_model: bool) -> str:
    """What to do next with a job that ended with a saved model ('' otherwise)."""
    if not has_model or status not in (JobStatus.COMPLETED, JobStatus.STOPPED):
        return ""
    done = "Training finished" if status == JobStatus.COMPLETED else "Stopped; the model so far was saved"
    return (f'<div id="job-next" class="sft-msg sft-msg-ok" style="background:#dcfce7;color:#166534;'
            f'border:1px solid #86efac;padding:8px 10px;border-radius:6px">{done}. Next: '
            f"<b>Try in Playground</b> to chat with it, or <b>Prepare zip</b> to download it.</div>")
