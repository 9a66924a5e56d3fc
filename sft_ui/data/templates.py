"""Chat templates: a plain one for tokenizers that ship none, and whether a template marks the replies."""

from __future__ import annotations

import re
from typing import Any

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
