"""The Train tab: presets at the top, the essential fields, the other fields folded by group, the data preview and
Start. The form's values live on in the browser across reloads; a refused Start or Save marks the fields at fault."""

import dataclasses
import logging
from typing import Any

import gradio as gr
from pydantic import ValidationError

from sft_ui.config import SFTConfig
from sft_ui.data import describe
from sft_ui.data.sources import LOCAL_SUFFIXES
from sft_ui.errors import one_line
from sft_ui.manager import JobManager, LimitError, NotFoundError
from sft_ui.settings import resolve_inside
from sft_ui.status import JobStatus
from sft_ui.store import StoreWriteError
from sft_ui.web.ui import form, form_memory, marks, sweep_views, train_presets, train_sweep, views
from sft_ui.web.ui.common import PRIVATE, QUIET
from sft_ui.web.ui.machine import detect
from sft_ui.web.ui.models import model_choices
from sft_ui.web.ui.plain_errors import FieldError, field_errors
from sft_ui.web.ui.train_fields import build_fields

log = logging.getLogger(__name__)

DEFAULT_PRESET = train_presets.DEFAULT_PRESET
# After a refused Start or Save: bring the first marked field into view (on a phone it may be far up the page).
SHOW_FIRST_MARK = ("() => { setTimeout(() => document.querySelector('#train-form .field-error')"
                   "?.scrollIntoView({block: 'center', behavior: 'smooth'}), 150); }")


@dataclasses.dataclass
class TrainTab:
    """What other tabs use of the Train tab: the form, its message box, Start, the pickers and presets."""

    specs: list[form.FieldSpec]
    fields: list[gr.components.Component]
    message: gr.HTML
    start: gr.Button
    preview_out: gr.HTML
    dataset_pick: gr.Dropdown  # the upload library's files, beside dataset_name
    model_pick: gr.Dropdown  # the built-in and the local models, beside base_model
    preset: gr.Dropdown
    started: Any = None  # the Start click (build_ui chains the Jobs tab on it)
    job: gr.State | None = None  # the job the message under Start is about: {"job_id", "status"}, or None
    folds: list[gr.Accordion] = dataclasses.field(default_factory=list)  # the folded groups of fields
    fold_fields: list[set[str]] = dataclasses.field(default_factory=list)  # the field names of each
    sweep: gr.State | None = None  # the sweep the last Start created: {"sweep_id"}, or None (build_ui opens it)

    def field(self, name: str) -> gr.components.Component:
        """The form component of one SFTConfig field."""
        return self.fields[[spec.name for spec in self.specs].index(name)]

    def unfolding(self, answer: list[Any], first: int) -> list[Any]:
        """A handler's `answer` whose field updates start at `first`, plus one update per folded group: those
        holding a marked field open."""
        updates = answer[first:first + len(self.specs)]
        return [*answer, *marks.unfold(self.specs, updates, self.fold_fields)]


def build(demo: gr.Blocks, manager: JobManager, timer: gr.Timer) -> TrainTab:
    """The Train tab (call inside gr.Tabs) with its own events; build_ui chains the Jobs tab on `started`."""
    groups = form.form_specs(detect())
    specs = [spec for group in groups.values() for spec in group]
    with gr.Tab("Train", id="train"), gr.Row(equal_height=False, elem_id="train-layout"):
        with gr.Column(scale=3, min_width=280, elem_id="train-form"):
            picker = train_presets.build_picker()
            made, extras, folds = build_fields(groups)
        with gr.Column(scale=2, min_width=280, elem_id="train-side"):
            with gr.Column(elem_id="start-bar"):
                start = gr.Button("Start training", variant="primary", size="lg", elem_id="start-btn")
                message = gr.HTML(elem_id="form-msg")
            sweep_rows = train_sweep.build(specs)
            preview_btn = gr.Button("Preview data", elem_id="preview-btn")
            preview_out = gr.HTML(elem_id="preview-out")
        # Inside the tab: a component made between gr.Tabs and its gr.Tab children would count as a tab.
        job, field_marks = gr.State(None), gr.State({})  # field_marks: marks.py, of the last refused Start or Save
        sweep = gr.State(None)
        memory, replace_name = form_memory.browser_state(), gr.State("")  # replace_name: see save_preset
    fields = [made[spec.name] for spec in specs]
    part = TrainTab(specs, fields, message, start, preview_out, extras["dataset_pick"], extras["model_pick"],
                    picker.preset, job=job, folds=list(folds.values()),
                    fold_fields=[{spec.name for spec in groups[group]} for group in folds], sweep=sweep)
    _wire_presets(manager, part, picker, field_marks, replace_name)
    _wire_memory(demo, manager, part, picker, field_marks, memory)
    def begin(old: dict[str, Any], *values: Any) -> list[Any]:
        """Start (one job, or a sweep's when a sweep row is filled): [message, job, marks, *field updates, sweep,
        *folded groups]."""
        form_values, rows = values[:len(specs)], train_sweep.rows_of(values[len(specs):])
        if train_sweep.wanted(rows):
            return part.unfolding(start_sweep(manager, specs, form_values, old, rows), 3)
        return part.unfolding([*start_job(manager, specs, form_values, old), None], 3)

    part.started = start.click(begin, [field_marks, *fields, *sweep_rows.inputs],
                               [message, job, field_marks, *fields, sweep, *part.folds], **PRIVATE)
    train_sweep.wire(sweep_rows, specs, start)
    part.started.then(None, js=SHOW_FIRST_MARK, **QUIET)
    timer.tick(lambda job: follow_job(manager, job), part.job, [message, part.job], **QUIET)
    preview_btn.click(lambda *values: preview(manager, specs, values), fields, preview_out, **PRIVATE)
    part.dataset_pick.input(lambda path: path or gr.skip(), part.dataset_pick, part.field("dataset_name"), **PRIVATE)
    part.model_pick.input(lambda path: path or gr.skip(), part.model_pick, part.field("base_model"), **PRIVATE)
    mode = part.field(form.TRAIN_FOR)
    mode.change(lambda value: (gr.update(visible=value != form.EPOCHS), gr.update(visible=value == form.EPOCHS)),
                mode, [part.field("max_steps"), part.field("num_train_epochs")], **QUIET)
    return part


def _wire_presets(manager: JobManager, part: TrainTab, picker: train_presets.PresetPicker, field_marks: gr.State,
                  replace_name: gr.State) -> None:
    """Picking a preset (or Reset) fills the form; Save as keeps it, Delete removes a saved one."""
    specs, fields = part.specs, part.fields
    fill = [*fields, picker.message, picker.save_name]
    picker.preset.input(lambda value: train_presets.load(manager, specs, value), picker.preset, fill, **PRIVATE)
    picker.reset.click(lambda value: train_presets.load(manager, specs, value), picker.preset, fill, **PRIVATE)
    picker.preset.change(train_presets.deletable, picker.preset, picker.delete, **QUIET)

    def save(name: str, pending: str, old: dict[str, Any], *values: Any) -> list[Any]:
        """Save as: [message, presets dropdown, name to replace, marks, *field updates, *folded groups]."""
        return part.unfolding(save_preset(manager, specs, name, pending, old, values), 4)

    saved = picker.save.click(save, [picker.save_name, replace_name, field_marks, *fields],
                              [picker.message, picker.preset, replace_name, field_marks, *fields, *part.folds],
                              **PRIVATE)
    saved.then(None, js=SHOW_FIRST_MARK, **QUIET)
    picker.delete.click(lambda value: train_presets.delete(manager, value), picker.preset,
                        [picker.message, picker.preset], **PRIVATE)


def _wire_memory(demo: gr.Blocks, manager: JobManager, part: TrainTab, picker: train_presets.PresetPicker,
                 field_marks: gr.State, memory: gr.BrowserState) -> None:
    """The form in the browser (`memory`): restored at page load (then the pickers follow it), kept on every
    change; a change also clears the mark of the field that changed."""
    specs, fields = part.specs, part.fields

    def restore(saved: Any) -> list[Any]:
        """[*field updates, marks, presets dropdown, preset message, *folded groups] from what the browser kept."""
        return part.unfolding(restore_form(manager, specs, saved), 0)

    def keep(old: dict[str, Any], preset: str | None, *values: Any) -> list[Any]:
        """[what the browser keeps, the marks left, *field updates]."""
        updates, left = marks.clear_changed(specs, values, old)
        return [form_memory.stored(specs, values, preset), left, *updates]

    loaded = demo.load(restore, memory, [*fields, field_marks, picker.preset, picker.message, *part.folds], **QUIET)
    loaded.then(lambda model, data: (model_choices(manager, model), library_choices(manager, data)),
                [part.field("base_model"), part.field("dataset_name")], [part.model_pick, part.dataset_pick], **QUIET)
    gr.on([f.change for f in fields] + [picker.preset.change], keep, [field_marks, picker.preset, *fields],
          [memory, field_marks, *fields], trigger_mode="always_last", **QUIET)


def restore_form(manager: JobManager, specs: list[form.FieldSpec], saved: Any) -> list[Any]:
    """The form as the browser kept it: [*field updates, marks, presets dropdown, preset message]. Values the form
    cannot show are left at their defaults; restored values SFTConfig refuses are marked."""
    values, preset = form_memory.restored(specs, saved)
    defaults = form.config_to_form(specs, {})
    merged = [default if value is None else value for value, default in zip(values, defaults, strict=True)]
    errors = []
    try:
        SFTConfig(**form.form_to_config(specs, merged))
    except (ValidationError, ValueError, TypeError) as exc:
        errors = field_errors(exc, form.labels(specs))
    updates, field_marks = marks.marked(specs, errors, merged, None)
    updates = [_with_value(update, value) for update, value in zip(updates, values, strict=True)]
    text = ""
    if any(value is not None and value != default for value, default in zip(values, defaults, strict=True)):
        text = "Your unsaved form was restored as you left it; pick a preset to start afresh."
        text += " The marked fields need fixing." if field_marks else ""
    return [*updates, field_marks, train_presets.refresh(manager, preset), views.message_html(text, "info")]


def _with_value(update: Any, value: Any) -> Any:
    """A field's update that also sets `value` (None: the value stays as it is)."""
    if value is None:
        return update
    if isinstance(update, dict) and update.get("__type__") == "update":
        return {**update, "value": value}
    return gr.update(value=value)


def refresh_presets(manager: JobManager, value: str | None) -> gr.Dropdown:
    """The presets dropdown as the model library and the saved configs are now."""
    return train_presets.refresh(manager, value)


def library_choices(manager: JobManager, value: str | None = None) -> gr.Dropdown:
    """The dataset picker's choices: the upload library's files by name, each standing for its path."""
    choices = [(e["name"], e["path"]) for e in manager.list_datasets()]
    return gr.Dropdown(choices=choices, value=value if value in {path for _, path in choices} else None)


def refused(manager: JobManager, specs: list[form.FieldSpec], errors: list[FieldError], values: tuple[Any, ...],
            old: dict[str, Any], verb: str) -> tuple[str, dict[str, Any], list[Any]]:
    """A config refused by validation: (the message, the new marks, the field updates)."""
    lines = [error.line(form.labels(specs)) for error in errors]
    hint = "Fix the marked fields:" if any(e.field for e in errors) else "Fix this:"
    text = f"{verb}. {hint}\n" + "\n".join(f"• {line}" for line in lines) + where(manager, "\n".join(lines))
    updates, new = marks.marked(specs, errors, values, old)
    return views.message_html(text, "error"), new, updates


def start_job(manager: JobManager, specs: list[form.FieldSpec], values: tuple[Any, ...],
              old: dict[str, Any]) -> list[Any]:
    """Create and start a job from the form: [message, the job it is about, marks, *field updates]."""
    config = form.form_to_config(specs, list(values))
    errors = checked(manager, specs, config)
    record: dict[str, Any] = {}
    if not errors:
        try:
            record = manager.start_job(manager.create_job(config))
        except StoreWriteError as exc:
            return [views.message_html(f"Not started: {exc.explain()}", "error"), None, old, *[gr.skip()] * len(specs)]
        except (ValidationError, ValueError, TypeError) as exc:
            errors = field_errors(exc, form.labels(specs))
    if errors:
        text, new, updates = refused(manager, specs, errors, values, old, "Not started")
        return [text, None, new, *updates]
    updates, new = marks.marked(specs, [], values, old)
    job = {"job_id": record["job_id"], "status": record["status"], "queue_position": record.get("queue_position")}
    return [job_message(record), job, new, *updates]


def start_sweep(manager: JobManager, specs: list[form.FieldSpec], values: tuple[Any, ...], old: dict[str, Any],
                rows: list[tuple[str | None, str | None]]) -> list[Any]:
    """Create a sweep from the form and the sweep rows (manager.sweeps.create, every point checked first):
    [message, None, marks, *field updates, the sweep]."""
    config = form.form_to_config(specs, list(values))
    grid, errors = sweep_views.read_rows(specs, rows)
    if not errors:
        first = {name: options[0] for name, options in grid.items()}
        shared = [e for e in checked(manager, specs, {**config, **first}) if e.field not in grid]
        errors = list({(e.field, e.message): e for e in [*shared, *train_sweep.point_errors(specs, config, grid)]}
                      .values())
    view: dict[str, Any] = {}
    if not errors:
        try:
            view = manager.sweeps.create({"config": config, "grid": grid})
        except (StoreWriteError, LimitError) as exc:
            text = exc.explain() if isinstance(exc, StoreWriteError) else one_line(exc)
            return [views.message_html(f"Not started: {text}", "error"), None, old, *[gr.skip()] * len(specs), None]
        except (ValidationError, ValueError, TypeError) as exc:
            errors = sweep_views.plan_errors(exc, form.labels(specs))
    if errors:
        text, new, updates = refused(manager, specs, errors, values, old, "Not started")
        return [text, None, new, *updates, None]
    updates, new = marks.marked(specs, [], values, old)
    return [train_sweep.started_message(view), None, new, *updates, {"sweep_id": view["sweep_id"]}]


def checked(manager: JobManager, specs: list[form.FieldSpec], config: dict[str, Any]) -> list[FieldError]:
    """Everything the form can tell at once about a config before Start: SFTConfig's refusals and a data file
    missing under the data root. The manager takes a job whose file is not there yet (it may come later; the job
    fails once started); the form says so at Start instead."""
    labels = form.labels(specs)
    try:
        SFTConfig(**config)
        errors = []
    except (ValidationError, ValueError, TypeError) as exc:
        errors = field_errors(exc, labels)
    name = str(config.get("dataset_name") or "").strip()
    if not name.lower().endswith(LOCAL_SUFFIXES):
        return errors
    try:
        found = resolve_inside(manager.store_root(), name, "dataset_name").is_file()
    except (ValueError, OSError):
        return errors  # create_job names what is wrong with the path itself
    missing = FieldError("dataset_name", f"file not found under the data root: {name}")
    return errors if found or any(e.field == "dataset_name" for e in errors) else [*errors, missing]


def job_message(record: dict[str, Any], data_root: str = "") -> str:
    """The message under Start about one job, as it is now."""
    job, status = f"Job {record['job_id']}", record["status"]
    if status == JobStatus.PENDING and record.get("queue_position"):
        return views.message_html(f"{job} is queued (position {record['queue_position']}); it starts when a slot "
                                  "frees.", "info")
    if status == JobStatus.FAILED:
        cause = one_line(Exception(record.get("error") or "no reason recorded"))
        return views.message_html(f"{job} failed: {cause}{data_root_hint(data_root, cause)}\nIts log is in the Jobs "
                                  "tab.", "error")
    if status == JobStatus.COMPLETED:
        return views.message_html(f"{job} completed: try it in the Playground, or download it from the Jobs tab.",
                                  "ok")
    if status == JobStatus.STOPPED:
        return views.message_html(f"{job} was stopped.", "info")
    return views.message_html(f"{job} is {status}.", "ok")


def follow_job(manager: JobManager, job: dict[str, Any] | None) -> tuple[Any, Any]:
    """On the timer: the message under Start follows its job's status (nothing is sent while it stays)."""
    if not job:
        return gr.skip(), gr.skip()
    try:
        record = manager.get_job_status(job["job_id"])
    except NotFoundError:
        return "", None  # the job was deleted: the message about it goes too
    if record["status"] == job["status"] and record.get("queue_position") == job.get("queue_position"):
        return gr.skip(), gr.skip()
    ended = record["status"] in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)
    now = None if ended else {"job_id": job["job_id"], "status": record["status"],
                              "queue_position": record.get("queue_position")}
    return job_message(record, str(manager.store_root())), now


def save_preset(manager: JobManager, specs: list[form.FieldSpec], name: str, pending: str, old: dict[str, Any],
                values: tuple[Any, ...]) -> list[Any]:
    """Save the form under a name; an existing name is replaced on the second click.
    [message, presets dropdown, name to replace, marks, *field updates]."""
    name, skips = (name or "").strip(), [gr.skip()] * len(specs)
    if not name:
        return [views.message_html("Type a name to save the form under.", "error"), gr.skip(), "", old, *skips]
    exists = any(c["name"] == name for c in manager.list_configs())
    if exists and pending != name:
        text = f"A saved config named “{name}” exists. Click Save as again to replace it."
        return [views.message_html(text, "info"), gr.skip(), name, old, *skips]
    try:
        config_id = manager.save_config(name, form.form_to_config(specs, list(values)))
    except StoreWriteError as exc:
        return [views.message_html(exc.explain().capitalize(), "error"), gr.skip(), "", old, *skips]
    except (ValidationError, ValueError, TypeError) as exc:
        text, new, updates = refused(manager, specs, field_errors(exc, form.labels(specs)), values, old, "Not saved")
        return [text, gr.skip(), "", new, *updates]
    verb = "Replaced" if exists else "Saved"
    updates, new = marks.marked(specs, [], values, old)
    return [views.message_html(f"{verb} “{name}”.", "ok"), refresh_presets(manager, f"saved:{config_id}"), "", new,
            *updates]


def preview(manager: JobManager, specs: list[form.FieldSpec], values: tuple[Any, ...]) -> str:
    """The first rows of the data set as the model will see them, or why they cannot be read."""
    info: dict[str, Any] = {}
    labels = form.labels(specs)
    try:
        rows = manager.preview(form.form_to_config(specs, list(values)), n=3, info=info)
    except ValidationError as exc:
        lines = "\n".join(f"• {error.line(labels)}" for error in field_errors(exc, labels))
        return views.message_html(f"Fix these fields first:\n{lines}", "error")
    except Exception as exc:  # any data-set problem is shown to the person, not raised
        log.info("preview failed: %s", exc)
        lines = "\n".join(error.line(labels) for error in field_errors(exc, labels))
        return views.message_html(f"Cannot read the data set. {lines}{where(manager, str(exc))}", "error")
    return views.message_html("\n".join(describe(info)), "info") + views.preview_html(rows)


def where(manager: JobManager, error: str) -> str:
    """For a file that was not found: where the data root is and how to get a file there ('' otherwise)."""
    return data_root_hint(str(manager.store_root()), error)


def data_root_hint(data_root: str, error: str) -> str:
    """For an error about a file not found: where the data root is and how to get a file there ('' otherwise)."""
    if "not found" not in error or not data_root:
        return ""
    return (f"\nThe data root is {data_root}: upload the file in the Data tab (it goes to datasets/), "
            "or copy it under the data root and give its path relative to it.")
