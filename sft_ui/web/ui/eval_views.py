"""Pure formatting of a job's evaluation (no manager calls): the Evaluation block, the sample answers read
incrementally, and the samples table (one row per prompt, one column per step)."""

import math
from typing import Any

from sft_ui.escaping import escape

MAX_SAMPLE_COLUMNS = 6  # step columns of the samples table: the first step (before training) and the latest ones
MAX_EXAMPLES = 5  # scored examples folded under the score
METRIC_NAMES = {"eval_loss": "eval loss", "eval_mean_token_accuracy": "eval token accuracy"}
_CELL = ("padding:4px 6px;border:1px solid var(--border-color-primary);vertical-align:top;text-align:left;"
         "white-space:pre-wrap;overflow-wrap:anywhere")
_ANSWER = _CELL + ";min-width:120px;max-width:260px;font-family:monospace;font-size:0.85em"


def metric_name(metric: str) -> str:
    """'eval_loss' -> 'eval loss' (an unknown metric as written, underscores as spaces)."""
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _num(value: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits ('' when missing, 'nan' when not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f"{value:.{digits}g}" if math.isfinite(value) else "nan"


def _secs(value: Any) -> str:
    """Seconds as '2.09 s' ('' when missing)."""
    return f"{_num(value, 3)} s" if isinstance(value, int | float) and not isinstance(value, bool) else ""


# --- the Evaluation block ---
def score_text(score: dict[str, Any] | None) -> str:
    """'exact match 0.51 (base 0.00) on 100 rows; F1 0.62 (base 0.10)', from the score's numbers ('' without)."""
    if not isinstance(score, dict) or not isinstance(score.get("exact_match"), int | float):
        return ""
    text = f"exact match {score['exact_match']:.2f}"
    if isinstance(score.get("base_exact_match"), int | float):
        text += f" (base {score['base_exact_match']:.2f})"
    if isinstance(score.get("rows"), int):
        text += f" on {score['rows']} rows"
    if isinstance(score.get("f1"), int | float):
        text += f"; F1 {score['f1']:.2f}"
        if isinstance(score.get("base_f1"), int | float):
            text += f" (base {score['base_f1']:.2f})"
    return text


def live_eval_text(points: list[tuple[int, float]], metric_points: list[tuple[int, float]], metric: str) -> str:
    """While a job runs: its latest eval loss and the best value of its metric so far ('' before the first eval)."""
    if not points:
        return ""
    step, value = points[-1]
    text = f"Eval loss {_num(value)} at step {step} ({len(points)} evaluation{'s' if len(points) != 1 else ''})"
    finite = [p for p in metric_points if math.isfinite(p[1])]
    if finite:
        higher = not metric.endswith("loss")
        best = (max if higher else min)(finite, key=lambda p: p[1])
        text += f"; best {metric_name(metric)} so far {_num(best[1])} at step {best[0]}"
    return text


def evaluation_items(result: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(css class, plain text) of each line the Evaluation block shows for an ended job's result."""
    result = result or {}
    items = []
    score = score_text(result.get("score"))
    if score:
        items.append(("eval-score", f"Score: {score}"))
    if isinstance(result.get("eval_loss"), int | float):
        text = f"Eval loss {_num(result['eval_loss'])}"
        if isinstance(result.get("perplexity"), int | float):
            text += f" · perplexity {_num(result['perplexity'])}"
        items.append(("eval-loss", text + " (of the saved model)"))
    best = result.get("best")
    if isinstance(best, dict) and isinstance(best.get("value"), int | float):
        kept = ("kept as the job's model" if best.get("kept") else
                "not kept: the saved model is the last step's (turn on Keep best model to keep the best)")
        items.append(("eval-best", f"Best {metric_name(str(best.get('metric', 'eval_loss')))} {_num(best['value'])} "
                                   f"at step {best.get('step')}; {kept}"))
    early = result.get("early_stop")
    if isinstance(early, dict) and early.get("stopped"):
        items.append(("eval-early", f"Stopped early: {early.get('reason') or 'no reason recorded'}"))
    cost = cost_text(result)
    if cost:
        items.append(("eval-cost", f"Cost: {cost}"))
    return items


def cost_text(result: dict[str, Any]) -> str:
    """What evaluating, sampling and scoring took: 'evaluation 2.09 s (8 evaluations); samples 0.051 s per round
    (9 rounds of 3 prompts); score 0.675 s' ('' when none ran)."""
    parts = []
    if isinstance(result.get("eval_seconds"), int | float):
        count = result.get("evaluations")
        parts.append(f"evaluation {_secs(result['eval_seconds'])}" + (f" ({count} evaluations)" if count else ""))
    samples = result.get("samples")
    if isinstance(samples, dict) and isinstance(samples.get("seconds_per_round"), int | float):
        parts.append(f"samples {_secs(samples['seconds_per_round'])} per round ({samples.get('rounds')} rounds of "
                     f"{samples.get('prompts')} prompts)")
    score = result.get("score")
    if isinstance(score, dict) and isinstance(score.get("seconds"), int | float):
        parts.append(f"score {_secs(score['seconds'])}")
    return "; ".join(parts)


def examples_html(score: dict[str, Any] | None) -> str:
    """The first scored rows (prompt, reference, tuned and base answers), folded away ('' without)."""
    examples = (score or {}).get("examples") if isinstance(score, dict) else None
    if not isinstance(examples, list) or not examples:
        return ""
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("prompt", "reference", "tuned", "base"))
    rows = "".join("<tr>" + "".join(f'<td style="{_ANSWER}">{escape(ex.get(key) or "")}</td>'
                                    for key in ("prompt", "reference", "answer", "base_answer")) + "</tr>"
                   for ex in examples[:MAX_EXAMPLES] if isinstance(ex, dict))
    return (f'<details style="margin-top:4px"><summary>Scored examples (the first {min(len(examples), MAX_EXAMPLES)})'
            f'</summary><div style="overflow-x:auto"><table style="border-collapse:collapse;font-size:0.9em">'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div></details>")


def evaluation_html(result: dict[str, Any] | None, live: str = "") -> str:
    """The Evaluation block: the ended job's score, eval loss, best step, early stop and cost, or the running job's
    `live` line; '' when there is nothing to show."""
    items = evaluation_items(result)
    if not items and live:
        items = [("eval-live", live)]
    if not items:
        return ""
    lines = "".join(f'<li class="{css}">{escape(text)}</li>' for css, text in items)
    return (f'<div id="job-eval"><h4 style="margin:6px 0 2px">Evaluation</h4>'
            f'<ul style="margin:0;padding-left:18px">{lines}</ul>'
            f"{examples_html((result or {}).get('score'))}</div>")


# --- sample answers ---
class SamplesBuffer:
    """The sample answers of one job read so far (with get_samples(since=)), pruned to the steps the table shows."""

    def __init__(self, max_columns: int = MAX_SAMPLE_COLUMNS) -> None:
        self.max_columns = max_columns
        self.answers: dict[tuple[int, int], dict[str, Any]] = {}  # (step, index) -> the line
        self.steps: set[int] = set()  # every step with answers, shown or not
        self.last_step = -1
        self.sent: dict[str, str] = {}  # what the Jobs tab last sent of this job: its Evaluation block and table

    def since(self) -> int | None:
        """The `since` to ask for: one step back, so that a round read half-written is completed."""
        return None if self.last_step < 0 else self.last_step - 1

    def add(self, lines: list[dict[str, Any]]) -> bool:
        """Keep the lines not seen yet; True when any was new."""
        fresh = False
        for line in lines:
            if not isinstance(line, dict) or not isinstance(line.get("step"), int) or not isinstance(
                    line.get("index"), int):
                continue
            key = (line["step"], line["index"])
            if key not in self.answers:
                self.answers[key] = line
                fresh = True
            self.steps.add(line["step"])
            self.last_step = max(self.last_step, line["step"])
        if fresh:
            keep = set(shown_steps(sorted(self.steps), self.max_columns))
            self.answers = {key: line for key, line in self.answers.items() if key[0] in keep}
        return fresh

    def lines(self) -> list[dict[str, Any]]:
        """The kept lines by step, then prompt."""
        return [self.answers[key] for key in sorted(self.answers)]


def shown_steps(steps: list[int], max_columns: int = MAX_SAMPLE_COLUMNS) -> list[int]:
    """The steps the table shows: all when few, else the first (the model before training) and the latest."""
    if len(steps) <= max_columns:
        return steps
    return [steps[0], *steps[-(max_columns - 1):]] if max_columns > 1 else steps[-1:]


def samples_table_html(lines: list[dict[str, Any]], max_columns: int = MAX_SAMPLE_COLUMNS,
                       total_steps: int = 0) -> str:
    """One row per prompt, one column per step shown (of `total_steps` sample steps, when more were answered), the
    reference beside the prompt when any prompt has one; '' when the job wrote no sample answers."""
    steps = shown_steps(sorted({line["step"] for line in lines}), max_columns)
    if not steps:
        return ""
    by_index: dict[int, dict[str, Any]] = {}
    answers: dict[tuple[int, int], str] = {}
    for line in lines:
        by_index.setdefault(line["index"], line)
        answers[(line["step"], line["index"])] = str(line.get("answer") or "")
    has_reference = any(line.get("reference") is not None for line in by_index.values())
    head = f'<th style="{_CELL}">prompt</th>' + (f'<th style="{_CELL}">reference</th>' if has_reference else "")
    head += "".join(f'<th style="{_CELL}" data-step="{step}">step {step}</th>' for step in steps)
    rows = []
    for index in sorted(by_index):
        line = by_index[index]
        cells = f'<td style="{_ANSWER}" class="sample-prompt">{escape(line.get("prompt") or "")}</td>'
        if has_reference:
            cells += f'<td style="{_ANSWER}" class="sample-reference">{escape(line.get("reference") or "")}</td>'
        cells += "".join(f'<td style="{_ANSWER}" class="sample-answer" data-step="{step}">'
                         f'{escape(answers.get((step, index), ""))}</td>' for step in steps)
        rows.append(f'<tr data-index="{index}">{cells}</tr>')
    notes = [f"the first and the latest {len(steps) - 1} of {total_steps} sample steps"] \
        if total_steps > len(steps) else []
    notes += ["step 0 is the model before training"] if steps[0] == 0 else []
    note = f" ({'; '.join(notes)})" if notes else ""
    return (f'<div id="job-samples"><h4 style="margin:6px 0 2px">Samples</h4>'
            f'<p style="margin:0 0 4px;font-size:0.85em">Greedy answers to the sample prompts'
            f"{note}.</p>"
            f'<div style="overflow-x:auto;max-width:100%"><table id="samples-table" '
            f'style="border-collapse:collapse;font-size:0.9em"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></div>')
