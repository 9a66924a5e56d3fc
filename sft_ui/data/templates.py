"""Chat templates: a plain one for tokenizers that ship none, and whether a template marks the replies."""

from __future__ import annotations

import re
from typing import Any

from sft_ui.builtin import alpaca_prompt

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")  # the test TRL applies before assistant_only_loss

# Plain-text template for tokenizers that ship none; the {% generation %} block lets TRL mask all but the replies.
PLAIN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif -%}"
    "{{- '### ' + message['role'] | capitalize + ':\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + (eos_token or '') -}}{% endgeneration %}"
    "{%- else -%}{{- message['content'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- ('\\n\\n' if messages else '') + '### Assistant:\\n' -}}{%- endif -%}"
)


def ensure_chat_template(tokenizer: Any) -> Any:
    """Give a tokenizer without a chat template (e.g. gpt2) a plain-text one; returns the tokenizer."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return tokenizer


def has_generation(tokenizer: Any) -> bool:
    """Whether the chat template marks assistant turns with {% generation %}, which assistant_only_loss needs."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = template.get("default", "")
    return bool(_GENERATION.search(template))


def format_prompt(style: str, tokenizer: Any, prompt: str, input: str = "") -> tuple[str, list[int]]:  # noqa: A002
    """(text, token ids) of a prompt written as in training: the alpaca template, the chat template, or as is."""
    if style == "alpaca":
        text = alpaca_prompt(prompt, input)
    elif style == "chat":
        messages = [{"role": "user", "content": f"{prompt}\n{input}" if input else prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        done = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return text, list(done["input_ids"])
    else:
        text = f"{prompt}\n{input}" if input else prompt
    return text, list(tokenizer(text)["input_ids"])
