"""The Train tab's presets: built-in ones, one per local model and the saved configs; picking one fills the form.

A preset whose model or data comes from the Hugging Face Hub, or that needs a GPU, says so in its label.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sft_ui.config import SFTConfig
from sft_ui.data.sources import LOCAL_SUFFIXES
from sft_ui.manager import JobManager, NotFoundError
from sft_ui.presets import BUILTIN_PRESETS, local_presets, preset_config
from sft_ui.web.ui import form, views
from sft_ui.web.ui.machine import needs_gpu

DEFAULT_PRESET = "builtin:" + next(iter(BUILTIN_PRESETS))
BUILTIN_PREFIX = "builtin:"
_DEFAULTS = SFTConfig().model_dump()  # presets hold only what differs from these


@dataclass
class PresetPicker:
    """The preset controls at the top of the form."""

    preset: gr.Dropdown
    reset: gr.Button
    delete: gr.Button
    save_name: gr.Textbox
    save: gr.Button
    message: gr.HTML


def build_picker() -> PresetPicker:
    """The preset dropdown, Reset and Delete, and Save as (call inside the form's column)."""
    with gr.Row(equal_height=False, elem_id="preset-row"):
        preset = gr.Dropdown(choices(None, None), value=DEFAULT_PRESET, label="Preset", scale=4, min_width=220,
                             info="Picking one fills the form: built-in presets, one per local model, your saved "
                                  "configs.", elem_id="preset")
        reset = gr.Button("Reset to preset", size="sm", scale=1, min_width=110, elem_id="load-btn")
        delete = gr.Button("Delete", size="sm", variant="stop", interactive=False, scale=1, min_width=90,
                           elem_id="delete-btn")
    with gr.Row(equal_height=False, elem_id="save-row"):
        save_name = gr.Textbox(label="Save the form as", placeholder="a name", max_lines=1, scale=4, min_width=220,
                               elem_id="save-name")
        save = gr.Button("Save as", size="sm", scale=1, min_width=110, elem_id="save-btn")
    message = gr.HTML(elem_id="preset-msg")
    return PresetPicker(preset, reset, delete, save_name, save, message)


def needs(config: dict[str, Any], data_root: Path | None) -> list[str]:
    """What a config needs beyond this machine's files: 'the Hub' (a model or data set that is a hub id) and/or
    'a GPU'."""
    config = {**_DEFAULTS, **config}
    model, data = str(config["base_model"]), str(config["dataset_name"])
    local_model = model.startswith(BUILTIN_PREFIX) or (data_root is not None and _is_dir(data_root, model))
    local_data = data.startswith(BUILTIN_PREFIX) or data.lower().endswith(LOCAL_SUFFIXES)
    return [*(["the Hub"] if not (local_model and local_data) else []), *(["a GPU"] if needs_gpu(config) else [])]


def _is_dir(root: Path, name: str) -> bool:
    """Whether `name` is a folder under `root` (a local model)."""
    try:
        path = (root / name).resolve()
        return path.is_relative_to(root.resolve()) and path.is_dir()
    except (OSError, ValueError):
        return False


def _label(name: str, kind: str, config: dict[str, Any], data_root: Path | None) -> str:
    """'GPT-2 + Alpaca (LoRA) (built-in) · needs the Hub'."""
    wanted = needs(config, data_root)
    return f"{name}{kind}" + (f" · needs {' and '.join(wanted)}" if wanted else "")


def choices(manager: JobManager | None, data_root: Path | None) -> list[tuple[str, str]]:
    """Dropdown choices: built-in presets, the local models' presets, then saved configs (only built-in ones
    without a manager)."""
    out = [(_label(name, " (built-in)", config, data_root), f"builtin:{name}")
           for name, config in BUILTIN_PRESETS.items()]
    if manager is None:
        return out
    out += [(_label(name, "", config, data_root), f"local:{name}")
            for name, config in local_presets(manager.models.list()).items()]
    return out + [(_label(c["name"], " (saved)", c.get("config") or {}, data_root), f"saved:{c['config_id']}")
                  for c in manager.list_configs()]


def refresh(manager: JobManager, value: str | None) -> gr.Dropdown:
    """The presets dropdown with the local models and the saved configs as they are now."""
    found = choices(manager, manager.store_root())
    keep = value if value in {v for _, v in found} else DEFAULT_PRESET
    return gr.Dropdown(choices=found, value=keep)


def deletable(value: str | None) -> gr.Button:
    """Delete is on for saved configs only: built-in and local-model presets cannot be deleted."""
    return gr.Button(interactive=bool(value and value.startswith("saved:")))


def load(manager: JobManager, specs: list[form.FieldSpec], value: str | None) -> list[Any]:
    """Fill the form from a preset: [*form values, message, save name]."""
    try:
        name, config = _preset(manager, value)
    except (NotFoundError, KeyError, ValueError) as exc:
        return [gr.skip()] * len(specs) + [views.message_html(f"Cannot load: {exc}", "error"), gr.skip()]
    notes = form.not_offered(specs, config)
    if "the Hub" in needs(config, manager.store_root()):
        notes.append("Its model or data set comes from the Hugging Face Hub: the job downloads it when it starts, "
                     "and fails at once where the Hub cannot be reached.")
    saved_name = name if (value or "").startswith("saved:") else ""
    text = "\n".join([f"Loaded “{name}”.", *notes])
    return [*form.config_to_form(specs, config), views.message_html(text, "info" if notes else "ok"), saved_name]


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


def delete(manager: JobManager, value: str | None) -> tuple[Any, ...]:
    """Delete the selected saved config: (message, presets dropdown)."""
    if not value or not value.startswith("saved:"):
        return views.message_html("Only saved configs can be deleted; pick one first.", "error"), gr.skip()
    try:
        name = manager.get_config(value.removeprefix("saved:"))["name"]
        manager.delete_config(value.removeprefix("saved:"))
    except NotFoundError as exc:
        name, text = "", str(exc)
    else:
        text = f"Deleted “{name}”."
    return views.message_html(text, "ok" if name else "error"), refresh(manager, DEFAULT_PRESET)
