"""The Train tab: the form generated from SFTConfig, its pickers, presets and saved configs, the data preview,
Start."""

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
from pydantic import ValidationError

from sft_ui.data import describe
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.presets import BUILTIN_PRESETS, local_presets, preset_config
from sft_ui.store import StoreWriteError
from sft_ui.web.gradio_api import explain
from sft_ui.web.ui import form, views
from sft_ui.web.ui.common import PRIVATE, QUIET
from sft_ui.web.ui.models import model_choices

log = logging.getLogger(__name__)

DEFAULT_PRESET = "builtin:" + next(iter(BUILTIN_PRESETS))
# Fields with a picker below them: field -> (TrainTab attribute, label, elem_id, help).
PICKERS = {
    "base_model": ("model_pick", "Local models", "model-pick",
                   "Pick one to put it in base_model, or type a Hub id above; import models in the Models tab."),
    "dataset_name": ("dataset_pick", "Uploaded files", "dataset-pick",
                     "Pick one to put its path in dataset_name; upload files in the Data tab."),
}


@dataclass
class TrainTab:
    """What other tabs use of the Train tab: the form, its message box, the Start button, the pickers and presets."""

    specs: list[form.FieldSpec]
    fields: list[gr.components.Component]
    message: gr.HTML
    start: gr.Button
    preview_out: gr.HTML
    dataset_pick: gr.Dropdown  # the upload library's files, beside dataset_name
    model_pick: gr.Dropdown  # the built-in and the local models, beside base_model
    preset: gr.Dropdown

    def field(self, name: str) -> gr.components.Component:
        """The form component of one SFTConfig field."""
        return self.fields[[spec.name for spec in self.specs].index(name)]


def build(demo: gr.Blocks, manager: JobManager) -> TrainTab:
    """The Train tab (call inside gr.Tabs) with its own events; Start is wired by build_ui (it opens Jobs)."""
    groups = form.form_specs()
    specs = [spec for group in groups.values() for spec in group]
    fields: list[gr.components.Component] = []
    extras: dict[str, Any] = {}
    with gr.Tab("Train", id="train"), gr.Row(equal_height=False):
        with gr.Column(scale=3):
            for group, group_specs in groups.items():
                if group in form.COLLAPSED:
                    with gr.Accordion(group, open=False):
                        fields.extend(_field_rows(group_specs, extras))
                else:
                    gr.Markdown(f"### {group}")
                    fields.extend(_field_rows(group_specs, extras))
        with gr.Column(scale=2):
            start = gr.Button("Start training", variant="primary", size="lg", elem_id="start-btn")
            message = gr.HTML(elem_id="form-msg")
            with gr.Group():
                preset = gr.Dropdown(_preset_choices(None), value=DEFAULT_PRESET, label="Presets",
                                     info="Built-in presets, one per local model, and your saved configs.",
                                     elem_id="preset")
                with gr.Row():
                    load_btn = gr.Button("Load", size="sm", elem_id="load-btn")
                    delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-btn")
                save_name = gr.Textbox(label="Save the form as", placeholder="a name", max_lines=1, elem_id="save-name")
                save_btn = gr.Button("Save as", size="sm", elem_id="save-btn")
            preset_msg = gr.HTML(elem_id="preset-msg")
            preview_btn = gr.Button("Preview data", elem_id="preview-btn")
            preview_out = gr.HTML(elem_id="preview-out")
            replace_name = gr.State("")  # the name that a second click of Save as replaces
    load_btn.click(lambda value: load_preset(manager, specs, value), preset, [*fields, preset_msg, save_name],
                   **PRIVATE)
    save_btn.click(lambda name, pending, *values: save_preset(manager, specs, name, pending, values),
                   [save_name, replace_name, *fields], [preset_msg, preset, replace_name], **PRIVATE)
    delete_btn.click(lambda value: delete_preset(manager, value), preset, [preset_msg, preset], **PRIVATE)
    preview_btn.click(lambda *values: preview(manager, specs, values), fields, preview_out, **PRIVATE)
    demo.load(lambda value: refresh_presets(manager, value), preset, preset, **QUIET)
    part = TrainTab(specs, fields, message, start, preview_out, extras["dataset_pick"], extras["model_pick"], preset)
    part.dataset_pick.input(lambda path: path or gr.skip(), part.dataset_pick, part.field("dataset_name"), **PRIVATE)
    part.model_pick.input(lambda path: path or gr.skip(), part.model_pick, part.field("base_model"), **PRIVATE)
    demo.load(lambda: library_choices(manager), None, part.dataset_pick, **QUIET)
    demo.load(lambda value: model_choices(manager, value), part.field("base_model"), part.model_pick, **QUIET)
    return part


def library_choices(manager: JobManager, value: str | None = None) -> gr.Dropdown:
    """The dataset picker's choices: the upload library's files by name, each standing for its path."""
    choices = [(e["name"], e["path"]) for e in manager.list_datasets()]
    return gr.Dropdown(choices=choices, value=value if value in {path for _, path in choices} else None)


def start_job(manager: JobManager, specs: list[form.FieldSpec], values: tuple[Any, ...]) -> tuple[str, str | None]:
    """Create and start a job from the form: (the message, the job id or None when it did not start)."""
    try:
        job_id = manager.create_job(form.form_to_config(specs, list(values)))
        record = manager.start_job(job_id)
    except StoreWriteError as exc:
        return views.message_html(f"Not started: {exc.explain()}", "error"), None
    except (ValidationError, ValueError, TypeError) as exc:
        text = views.error_lines(explain(exc))
        return views.message_html(f"Not started. Fix these fields:\n{text}", "error"), None
    if record.get("queue_position"):
        text = f"Job {job_id} is queued (position {record['queue_position']}); it starts when a slot frees."
    else:
        text = f"Job {job_id} is {record['status']}."
    return views.message_html(text, "ok"), job_id


def load_preset(manager: JobManager, specs: list[form.FieldSpec], value: str | None) -> list[Any]:
    """Fill the form from a built-in preset or a saved config."""
    try:
        name, config = _preset(manager, value)
    except (NotFoundError, KeyError, ValueError) as exc:
        return [gr.skip()] * len(specs) + [views.message_html(f"Cannot load: {exc}", "error"), gr.skip()]
    saved_name = name if (value or "").startswith("saved:") else ""
    return [*form.config_to_form(specs, config), views.message_html(f"Loaded “{name}”.", "ok"), saved_name]


def save_preset(manager: JobManager, specs: list[form.FieldSpec], name: str, pending: str,
                values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Save the form under a name; an existing name is replaced on the second click."""
    name = (name or "").strip()
    if not name:
        return views.message_html("Type a name to save the form under.", "error"), gr.skip(), ""
    exists = any(c["name"] == name for c in manager.list_configs())
    if exists and pending != name:
        text = f"A saved config named “{name}” exists. Click Save as again to replace it."
        return views.message_html(text, "info"), gr.skip(), name
    try:
        config_id = manager.save_config(name, form.form_to_config(specs, list(values)))
    except StoreWriteError as exc:
        return views.message_html(exc.explain().capitalize(), "error"), gr.skip(), ""
    except (ValidationError, ValueError, TypeError) as exc:
        text = views.error_lines(explain(exc))
        return views.message_html(f"Not saved. Fix these fields:\n{text}", "error"), gr.skip(), ""
    verb = "Replaced" if exists else "Saved"
    choices = _preset_choices(manager)
    return views.message_html(f"{verb} “{name}”.", "ok"), gr.Dropdown(choices=choices, value=f"saved:{config_id}"), ""


def delete_preset(manager: JobManager, value: str | None) -> tuple[Any, ...]:
    """Delete the selected saved config."""
    if not value or not value.startswith("saved:"):
        return views.message_html("Only saved configs can be deleted; pick one first.", "error"), gr.skip()
    try:
        name = manager.get_config(value.removeprefix("saved:"))["name"]
        manager.delete_config(value.removeprefix("saved:"))
    except NotFoundError as exc:
        name, text = "", str(exc)
    else:
        text = f"Deleted “{name}”."
    choices = _preset_choices(manager)
    return views.message_html(text, "ok" if name else "error"), gr.Dropdown(choices=choices, value=DEFAULT_PRESET)


def refresh_presets(manager: JobManager, value: str | None) -> gr.Dropdown:
    """The presets dropdown with the local models and the saved configs as they are now."""
    choices = _preset_choices(manager)
    keep = value if value in {v for _, v in choices} else DEFAULT_PRESET
    return gr.Dropdown(choices=choices, value=keep)


def preview(manager: JobManager, specs: list[form.FieldSpec], values: tuple[Any, ...]) -> str:
    """The first rows of the data set as the model will see them, or why they cannot be read."""
    info: dict[str, Any] = {}
    try:
        rows = manager.preview(form.form_to_config(specs, list(values)), n=3, info=info)
    except ValidationError as exc:
        text = views.error_lines(explain(exc))
        return views.message_html(f"Fix these fields first:\n{text}", "error")
    except Exception as exc:  # any data-set problem is shown to the person, not raised
        log.info("preview failed: %s", exc)
        return views.message_html(f"Cannot read the data set: {exc}{where(manager, str(exc))}", "error")
    return views.message_html("\n".join(describe(info)), "info") + views.preview_html(rows)


def where(manager: JobManager, error: str) -> str:
    """For a file that was not found: where the data root is and how to get a file there ('' otherwise)."""
    if "not found" not in error:
        return ""
    return (f"\nThe data root is {manager.store_root()}: upload the file in the Data tab (it goes to datasets/), "
            "or copy it under the data root and give its path relative to it.")


def _field_rows(specs: list[form.FieldSpec], extras: dict[str, Any], per_row: int = 2) -> list[gr.components.Component]:
    """The form components of one group, `per_row` to a row; the fields in PICKERS get their picker below them."""
    made = []
    for start in range(0, len(specs), per_row):
        with gr.Row():
            for spec in specs[start:start + per_row]:
                if spec.name not in PICKERS:
                    made.append(_field(spec))
                    continue
                key, label, elem_id, info = PICKERS[spec.name]
                with gr.Column(min_width=160):
                    made.append(_field(spec))
                    extras[key] = gr.Dropdown([], value=None, label=label, elem_id=elem_id, info=info)
    return made


def _field(spec: form.FieldSpec) -> gr.components.Component:
    """One form component, its default, label and help text taken from SFTConfig."""
    common: dict[str, Any] = {"label": spec.label, "info": spec.info, "elem_id": f"cfg-{spec.name}"}
    if spec.kind == "bool":
        return gr.Checkbox(value=spec.default, **common)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=spec.default, **common)
    if spec.kind in ("int", "float") and not spec.optional:
        return gr.Number(value=spec.default, step=form.number_step(spec), **common)
    # Text for optional numbers too: gr.Number shows None as 0 and sends 0.
    return gr.Textbox(value=spec.default, max_lines=1, placeholder="empty: none" if spec.optional else None, **common)


def _preset_choices(manager: JobManager | None) -> list[tuple[str, str]]:
    """Dropdown choices: built-in presets, the local models' presets, then saved configs (only built-in ones
    without a manager)."""
    builtin = [(f"{name} (built-in)", f"builtin:{name}") for name in BUILTIN_PRESETS]
    if manager is None:
        return builtin
    local = [(name, f"local:{name}") for name in local_presets(manager.models.list())]
    return builtin + local + [(f"{c['name']} (saved)", f"saved:{c['config_id']}") for c in manager.list_configs()]


def _preset(manager: JobManager, value: str | None) -> tuple[str, dict[str, Any]]:
    """(name, config) of a dropdown value."""
    if not value:
        raise ValueError("pick a preset first")
    if value.startswith("builtin:"):
        name = value.removeprefix("builtin:")
        return name, preset_config(name)
    if value.startswith("local:"):
        name = value.removeprefix("local:")
        try:
            return name, preset_config(name, manager.models.list())
        except KeyError:
            raise NotFoundError(f"its model is no longer in the library (see the Models tab): {name}") from None
    found = manager.get_config(value.removeprefix("saved:"))
    return found["name"], found["config"]
