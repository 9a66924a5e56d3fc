"""The Train form's components: the essentials laid out first (model and data with their pickers, the format,
steps or epochs, the learning rate, LoRA), then one folded gr.Accordion per SFTConfig group."""

from typing import Any

import gradio as gr

from sft_ui.web.ui import form

# Fields with a picker below them: field -> (extras key, label, elem_id, help).
PICKERS = {
    "base_model": ("model_pick", "Local models", "model-pick",
                   "Pick one to put it in Base model, or type a Hub id above; import models in the Models tab."),
    "dataset_name": ("dataset_pick", "Uploaded files", "dataset-pick",
                     "Pick one to put its path in Data set; upload files in the Data tab."),
}
LINES_PLACEHOLDER = 'One prompt per line, or "auto" for the first held-out rows'
# The essentials, row by row (form.ESSENTIALS holds the same names).
ESSENTIAL_ROWS = (("base_model", "dataset_name"), ("dataset_format", "job_name"),
                  (form.TRAIN_FOR, "max_steps", "num_train_epochs", "learning_rate"), ("use_lora", "lora_r"))


def build_fields(groups: dict[str, list[form.FieldSpec]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every field's component (call inside the form's column): (field name -> component, picker key -> picker,
    group -> its gr.Accordion)."""
    made: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    folds: dict[str, Any] = {}
    essentials = {spec.name: spec for spec in groups[form.ESSENTIALS_GROUP]}
    gr.Markdown("### Essentials", elem_id="essentials-head")
    for names in ESSENTIAL_ROWS:
        with gr.Row(equal_height=False):
            for name in names:
                made[name] = _with_picker(essentials[name], extras) if name in PICKERS else _field(essentials[name])
    for group, specs in groups.items():
        if group == form.ESSENTIALS_GROUP:
            continue
        with gr.Accordion(group, open=False, elem_id=f"group-{group.lower().replace(' ', '-')}") as folds[group]:
            for start in range(0, len(specs), 2):
                with gr.Row():
                    for spec in specs[start:start + 2]:
                        made[spec.name] = _field(spec)
    return made, extras, folds


def _with_picker(spec: form.FieldSpec, extras: dict[str, Any]) -> Any:
    """A field with its picker below it, in one column."""
    key, label, elem_id, info = PICKERS[spec.name]
    with gr.Column(min_width=220):
        component = _field(spec)
        extras[key] = gr.Dropdown([], value=None, label=label, elem_id=elem_id, info=info)
    return component


def _field(spec: form.FieldSpec) -> Any:
    """One form component, its default, label and help text taken from SFTConfig; disabled where this machine
    cannot use it (the help text says why)."""
    common: dict[str, Any] = {"label": spec.label, "info": spec.info, "elem_id": f"cfg-{spec.name}", "min_width": 140}
    if spec.blocked:
        common["interactive"] = False
    if spec.name == form.TRAIN_FOR:
        return gr.Radio(list(spec.choices), value=spec.default, **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=spec.default, **common)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=spec.default, **common)
    if spec.kind == "lines":
        return gr.Textbox(value=spec.default, lines=3, max_lines=8, placeholder=LINES_PLACEHOLDER, **common)
    if spec.kind in ("int", "float") and not spec.optional:
        visible = spec.name != "num_train_epochs"  # shown when Train for is "epochs"
        return gr.Number(value=spec.default, step=form.number_step(spec), visible=visible, **common)
    # Text for optional numbers too: gr.Number shows None as 0 and sends 0.
    return gr.Textbox(value=spec.default, max_lines=1, placeholder="empty: none" if spec.optional else None, **common)
