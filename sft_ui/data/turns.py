"""Conversations as trainers publish them (ShareGPT, OpenAI/HF, alpaca history) -> role/content turns with tools."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
          "bot": "assistant", "system": "system", "tool": "tool", "observation": "tool", "function": "tool",
          "ipython": "tool", "function_call": "call", "tool_call": "call", "developer": "system"}
_REASONING_PARTS = ("reasoning", "thinking")


class Drop(ValueError):
    """A row that cannot be used; its message is the reason counted in `rows.dropped`."""


def template_text(tokenizer: Any) -> str:
    """The chat template's source ('' without one; the default of a template dict)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return template.get("default", "") if isinstance(template, dict) else template


def supports_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders tool calls and tool lists (it names `tool_calls` and `tools`)."""
    template = template_text(tokenizer)
    return "tool_calls" in template and "tools" in template


def renders_reasoning(tokenizer: Any) -> bool:
    """Whether the chat template renders an assistant turn's `reasoning_content`."""
    return "reasoning_content" in template_text(tokenizer)


def json_value(value: Any) -> Any:
    """A JSON text parsed (CSV cells and many files hold lists as text); anything else as it is."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def tools_json(value: Any) -> str | None:
    """A `tools` cell (a JSON string or a list) as a JSON list string, None when empty; Drop when unreadable."""
    value = json_value(value)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise Drop("unreadable tools")
    return json.dumps(value, ensure_ascii=False)


def _content(value: Any) -> tuple[str | None, str | None]:
    """(text, reasoning) of a content value: a string, or a list of text/reasoning parts; Drop for other parts."""
    if value is None or isinstance(value, str):
        return value, None
    if not isinstance(value, list):
        raise Drop("unreadable content")
    texts, reasoning = [], []
    for part in value:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise Drop("unreadable content")
        kind = part.get("type") or "text"
        text = next((part[k] for k in ("text", "value", "content", kind) if isinstance(part.get(k), str)), None)
        if text is None:
            raise Drop(f"non-text content ({kind})")
        (reasoning if kind in _REASONING_PARTS else texts).append(text)
    return "".join(texts), ("".join(reasoning) or None)


def _call(value: Any) -> dict[str, Any]:
    """One tool call in HF's shape, {"type": "function", "function": {"name", "arguments" (JSON text)}}."""
    value = json_value(value)
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise Drop("unreadable tool call")
    arguments = json_value(value.get("arguments", value.get("parameters", {})))
    if arguments is None:
        arguments = {}
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"type": "function", "function": {"name": value["name"], "arguments": text}}


def _calls(value: Any) -> list[dict[str, Any]]:
    """A function_call value or a tool_calls list: one or more calls."""
    value = json_value(value)
    return [_call(v) for v in value] if isinstance(value, list) else [_call(value)]


def conversation(value: Any, key_map: dict[str, str], notes: Counter, reasoning_ok: bool) -> list[dict[str, Any]]:
    """Role/content turns (tool calls as `tool_calls`, results as role `tool`) of a ShareGPT or OpenAI
    conversation; `key_map` renames turn keys (e.g. speaker -> role). Drop names why a row is unusable."""
    value = json_value(value)
    if not isinstance(value, list) or not value:
        raise Drop("unreadable conversation")
    turns: list[dict[str, Any]] = []
    for raw in value:
        if not isinstance(raw, dict):
            raise Drop("unreadable conversation")
        turn = {key_map.get(k, k): v for k, v in raw.items()}
        # Arrow gives every turn all keys seen in the column, so a missing one is None rather than absent.
        name = str(turn.get("role") or turn.get("from") or "").lower()
        role = _ROLES.get(name)
        if role is None:
            raise Drop(f"unknown role {name[:30]!r}" if name else "turn without a role")
        content = turn.get("content") if turn.get("content") is not None else turn.get("value")
        text, reasoning = _content(content)
        reasoning = reasoning or turn.get("reasoning_content") or turn.get("reasoning")
        if role == "call":  # ShareGPT's function_call turn: the assistant calls a tool
            _add_calls(turns, _calls(content))
            continue
        legacy = turn.get("function_call")  # OpenAI's older single call on an assistant message
        calls = _calls(turn["tool_calls"]) if turn.get("tool_calls") else (_calls(legacy) if legacy else [])
        if role == "assistant" and calls:
            turns.append({"role": "assistant", "content": text or "", "tool_calls": calls})
        elif text is None:
            raise Drop("turn without content")
        elif role == "tool":
            turns.append({"role": "tool", "content": text, **({"name": turn["name"]} if turn.get("name") else {})})
        else:
            turns.append({"role": role, "content": text})
        if reasoning and role == "assistant":
            if reasoning_ok:
                turns[-1]["reasoning_content"] = str(reasoning)
            else:
                notes["reasoning dropped (the chat template does not render it)"] += 1
    return turns


def _add_calls(turns: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
    """Attach calls to the assistant turn just before, or start an assistant turn holding them."""
    last = turns[-1] if turns else None
    if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
        last["tool_calls"] = calls
    else:
        turns.append({"role": "assistant", "content": "", "tool_calls": calls})


def as_text_turns(turns: list[dict[str, Any]], tools: str | None) -> list[dict[str, Any]]:
    """Tool calls, results and the tool list as plain text turns, for chat templates without tool support."""
    out: list[dict[str, Any]] = []
    if tools:
        listing = "Tools you can call:\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in json.loads(tools))
        if turns and turns[0]["role"] == "system":
            out.append({"role": "system", "content": turns[0]["content"] + "\n\n" + listing})
            turns = turns[1:]
        else:
            out.append({"role": "system", "content": listing})
    for turn in turns:
        if turn.get("tool_calls"):
            calls = "\n".join(json.dumps({"name": c["function"]["name"],
                                          "arguments": json_value(c["function"]["arguments"])}, ensure_ascii=False)
                              for c in turn["tool_calls"])
            text = (turn["content"] + "\n" if turn["content"] else "") + f"Tool call:\n{calls}"
            out.append({"role": "assistant", "content": text})
        elif turn["role"] == "tool":
            out.append({"role": "user", "content": f"Tool result:\n{turn['content']}"})
        else:
            out.append({"role": turn["role"], "content": turn["content"]})
    return out


def history_turns(value: Any) -> list[dict[str, str]]:
    """Alpaca's `history` ([[prompt, response], ...]) as earlier user/assistant turns."""
    value = json_value(value)
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        raise Drop("unreadable history")
    turns = []
    for pair in value:
        if not isinstance(pair, list | tuple) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise Drop("unreadable history")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return turns
