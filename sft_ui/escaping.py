"""Text a person wrote, made safe to show in the page's Markdown and HTML components."""

from typing import Any

# What means something in HTML or Markdown (GFM: autolinks, tables, strikethrough; Gradio: $ for LaTeX).
_META = frozenset("&<>\"'\\`*_{}[]()#+-.!|~$=:@")


def escape(text: Any) -> str:
    """Text a person wrote (names, errors, logs, prompts), to embed in gr.Markdown or gr.HTML as literal text.

    Metacharacters become numeric character references: Markdown treats those as text, never as markup,
    and both renderers show the character itself (inside a Markdown code span they would show as written).
    """
    return "".join(f"&#{ord(c)};" if c in _META else c for c in str(text))
