"""The core verbs as a user runs them: real subprocesses, real exit codes, no tracebacks."""

import json
import os
import subprocess
import sys

import pytest


def run(args, stdin=None, env_extra=None, cwd=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(["mmagent", *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_piped_questions_print_only_answers(tiny_llava_dir, cat_photo, tmp_path):
    result = run(["chat", "--model", str(tiny_llava_dir), "--image", str(cat_photo), "--set", "model.max_new_tokens=5"],
                 stdin="What is in this picture?\n\nAnd now?\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(lines), result.stdout  # one answer per question, nothing else on stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["chat", "--model", "/no/such/model", "hi"], "model path '/no/such/model' is not a model directory"),
        (["chat", "--quantization", "3bit", "hi"], "model.quantization must be one of none, 8bit, 4bit"),
        (["chat", "--image", "/no/such.jpg", "hi"], "image '/no/such.jpg' does not exist"),
    ],
)
def test_bad_input_gets_a_clear_error_without_traceback(args, message, tmp_path):
    result = run(args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_corrupt_image_and_unknown_adapter(tiny_llava_dir, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = run(["chat", "--model", str(tiny_llava_dir), "--image", str(broken), "hi"], cwd=tmp_path)
    assert result.returncode == 2 and "broken.png" in result.stderr and "Traceback" not in result.stderr
    result = run(["chat", "--model", str(tiny_llava_dir), "--adapter", "legal", "hi"], cwd=tmp_path)
    assert result.returncode == 2 and "unknown adapter 'legal'; loaded adapters: none" in result.stderr


def test_chat_with_a_named_adapter(tiny_llava_dir, tiny_adapters, tmp_path):
    base = run(["chat", "--model", str(tiny_llava_dir), "hello"], cwd=tmp_path)
    with_a = run(["chat", "--model", str(tiny_llava_dir), "--adapter-path", f"a={tiny_adapters['a']}", "--adapter", "a", "hello"], cwd=tmp_path)
    assert base.returncode == with_a.returncode == 0, with_a.stderr
    assert base.stdout != with_a.stdout


@pytest.mark.embedded_model
def test_doctor_offline_passes_once_assembled(small_model_dir, cache_dir, tmp_path):
    result = run(["doctor", "--offline", "--json", "--model", "embedded:smollm2-135m"],
                 env_extra={"MMAGENT_PATHS_CACHE": str(cache_dir)}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["offline_ready"] is True
    names = {a["name"] for a in report["artifacts"]}
    assert "model: embedded:smollm2-135m" in names and "ASR: Whisper tiny.en (CTranslate2)" in names


def test_doctor_offline_fails_when_something_needs_the_network(tmp_path):
    result = run(["doctor", "--offline", "--model", "someone/not-downloaded-vlm"],
                 env_extra={"MMAGENT_PATHS_CACHE": str(tmp_path / "empty-cache"), "HF_HOME": str(tmp_path / "hf")},
                 cwd=tmp_path)
    assert result.returncode == 1
    assert "needs network" in result.stdout and "not ready to run offline" in result.stdout


def test_bad_parameter_raised_inside_a_command_is_a_usage_error(tmp_path):
    result = run(["chat", "--adapter-path", "no-equals-sign", "hi"], cwd=tmp_path)
    assert result.returncode == 2
    assert "expected NAME=DIR; got 'no-equals-sign'" in result.stderr and "Traceback" not in result.stderr


def test_set_reaches_the_model_for_keys_that_have_their_own_flag(tiny_llava_dir, tmp_path):
    """Issue 17: unset flags (--max-new-tokens, -q) used to overwrite `--set` values with None."""
    model = ["chat", "--model", str(tiny_llava_dir), "hello"]
    by_set = run([*model, "--set", "model.max_new_tokens=5"], cwd=tmp_path)
    by_flag = run([*model, "--max-new-tokens", "5"], cwd=tmp_path)
    longer = run(model, env_extra={"MMAGENT_MODEL_MAX_NEW_TOKENS": "40"}, cwd=tmp_path)
    assert by_set.returncode == by_flag.returncode == longer.returncode == 0, by_set.stderr + longer.stderr
    assert by_set.stdout == by_flag.stdout  # greedy decoding: the same 5 tokens
    assert len(longer.stdout) > len(by_set.stdout)  # --set beat the environment's 40

    doctor = run(["doctor", "--offline", "--json", "--model", str(tiny_llava_dir), "--set", "model.quantization=4bit"],
                 cwd=tmp_path)
    assert json.loads(doctor.stdout)["runtime"]["quantization requested"] == "4bit", doctor.stdout + doctor.stderr

    bogus = run([*model, "--set", "model.quantization=bogus"], cwd=tmp_path)
    assert bogus.returncode == 2 and "Traceback" not in bogus.stderr
    assert "model.quantization must be one of none, 8bit, 4bit; got 'bogus'" in bogus.stderr
    clash = run([*model, "-q", "4bit", "--set", "model.quantization=8bit"], cwd=tmp_path)
    assert clash.returncode == 2 and "disagree" in clash.stderr, clash.stderr


def test_doctor_names_the_missing_adapter_and_where_it_looked(tiny_llava_dir, tmp_path):
    (tmp_path / "mmagent.yaml").write_text("adapters:\n  support: ./adapters/support\n")
    result = run(["doctor", "--offline", "--json", "--model", str(tiny_llava_dir)], cwd=tmp_path)
    assert result.returncode == 1
    adapter = next(a for a in json.loads(result.stdout)["artifacts"] if a["name"] == "adapter: support")
    assert adapter["status"] == "missing"
    assert f"looked for {tmp_path.resolve() / 'adapters' / 'support' / 'adapter_config.json'} (no such folder)" in adapter["detail"]


def test_stderr_carries_no_library_noise_unless_verbose(tiny_llava_dir, tiny_adapters, tmp_path):
    """Issue 13: "Loading weights" bars, peft's FutureWarning and bitsandbytes' hub-kernel warning on every call."""
    args = ["chat", "--model", str(tiny_llava_dir), "--adapter-path", f"a={tiny_adapters['a']}", "--adapter", "a",
            "-q", "4bit", "--max-new-tokens", "3", "hello"]
    quiet = run(args, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    for noise in ("Loading weights", "Warning", "kernels-community", "it/s"):
        assert noise not in quiet.stderr, quiet.stderr
    verbose = run(["-v", *args], cwd=tmp_path)
    assert verbose.returncode == 0 and "Loading weights" in verbose.stderr, verbose.stderr
    assert verbose.stdout == quiet.stdout


def test_memory_search_takes_the_collection_as_show_and_delete_do(tmp_path):
    """Issue 17: the README's `mmagent memory search NAME "query"` was refused; -c NAME still works."""
    env = {"MMAGENT_MEMORY_PATH": str(tmp_path / "memory")}
    positional = run(["memory", "search", "handbook", "office cat"], env_extra=env, cwd=tmp_path)
    by_option = run(["memory", "search", "-c", "handbook", "office cat"], env_extra=env, cwd=tmp_path)
    for result in (positional, by_option):
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "collection 'handbook' does not exist (collections: none)" in result.stderr, result.stderr
    ambiguous = run(["memory", "search", "handbook", "office", "cat"], env_extra=env, cwd=tmp_path)
    assert ambiguous.returncode == 2 and "Quote a query of several words" in ambiguous.stderr


@pytest.mark.parametrize(
    "comment, sentence",
    [
        ("# DDP on CPU cores (gloo), e.g. to try a run without GPUs.\n#   accelerate launch ...\n", "DDP on CPU cores (gloo), e.g. to try a run without GPUs."),
        ("# LoRA for the VLM, i.e. an adapter\n# that wraps. Second sentence.\nkind: lora\n", "LoRA for the VLM, i.e. an adapter that wraps."),
        ("# No full stop at all\n#   cmd --x\n", "No full stop at all"),
        ("# Version 2.5 of it. More.\n", "Version 2.5 of it."),
    ],
)
def test_recipe_descriptions_are_whole_first_sentences(comment, sentence):
    from mmagent.cli.finetune import _first_sentence

    assert _first_sentence(comment) == sentence


def test_finetune_list_shows_whole_sentences():
    """Issue 17: `finetune list` cut ddp_cpu's description at "e.g."."""
    from mmagent.cli.finetune import shipped_recipe_infos

    rows = {r.name: r.description for r in shipped_recipe_infos()}
    assert rows["ddp_cpu"] == "DDP on the CPU cores of one machine (gloo backend), e.g. to try a multi-process run without GPUs."
    for name, description in rows.items():
        assert description.endswith(".") and not description.endswith(("e.g.", "i.e.")), (name, description)
