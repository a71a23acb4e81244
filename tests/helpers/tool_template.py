"""A tiny random-weight causal LM whose tokenizer calls tools the way Qwen2.5 does: a ChatML template
that lists the tools in the system block, and `<tool_call>` / `</tool_call>` as single added tokens.

It exercises the "model's own template" tool path (lazy grammar, marker tokens, parsing) without the
real model. `steer_to_call` makes the random model *choose* to call, deterministically, so the test
of the auto path does not depend on what random weights happen to prefer.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TOOLS_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = 'You are a helpful assistant.' -%}{%- set rest = messages -%}{%- endif -%}"
    "<|im_start|>system\n{{ system }}"
    "{%- if tools -%}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n"
    "<tools>{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
    "</tool_call>{%- endif -%}<|im_end|>\n"
    "{%- for m in rest -%}"
    "{%- if m['role'] == 'assistant' and m.get('tool_calls') -%}"
    "<|im_start|>assistant{%- if m['content'] %}\n{{ m['content'] }}{%- endif -%}"
    "{%- for c in m['tool_calls'] -%}{%- set f = c['function'] if 'function' in c else c -%}"
    "\n<tool_call>\n{\"name\": \"{{ f['name'] }}\", \"arguments\": {{ f['arguments'] | tojson }}}\n</tool_call>"
    "{%- endfor -%}<|im_end|>\n"
    "{%- elif m['role'] == 'tool' -%}<|im_start|>user\n<tool_response>\n{{ m['content'] }}\n</tool_response><|im_end|>\n"
    "{%- else -%}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def tool_tokenizer():
    """The tiny test tokenizer with the call markers as single (non-special, like Qwen's) added tokens."""
    from helpers.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.add_tokens(["<tool_call>", "</tool_call>"], special_tokens=False)
    tok.chat_template = CHATML_TOOLS_TEMPLATE
    return tok


def build_tiny_tool_lm(path: Path, seed: int = 0) -> Path:
    """A text-only tiny Llama checkpoint with the tool-calling tokenizer, at `path`."""
    from helpers.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(path, seed, tokenizer=tool_tokenizer())


def steer_to_call(model, tokenizer, after_id: int) -> None:
    """Make greedy decoding write `<tool_call>` right after token `after_id` (the end of the prompt).

    The layers' output projections are zeroed, so the last hidden state is the current token's own
    embedding; the `<tool_call>` row of the output head is set to that (normalised) embedding, scaled
    up. Everything after the marker is left to the grammar."""
    import torch

    call_id = tokenizer.convert_tokens_to_ids("<tool_call>")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        hidden = model.model.norm(model.model.embed_tokens.weight[after_id][None, None])[0, 0]
        model.lm_head.weight[call_id] = 50.0 * hidden / hidden.norm()
