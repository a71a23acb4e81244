import pytest

from mmagent.config import Config, load_config
from mmagent.errors import ConfigError


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config == Config()
    assert config.model.id == "default" and config.model.quantization == "none"


def test_file_then_env_then_overrides(tmp_path):
    file = tmp_path / "mmagent.yaml"
    file.write_text("model:\n  quantization: 8bit\n  max_new_tokens: 64\nadapters:\n  support: /a/b\nasr:\n  vad: false\n")
    env = {"MMAGENT_MODEL_QUANTIZATION": "4bit", "MMAGENT_ADAPTERS_LEGAL": "/c", "MMAGENT_MEMORY_URL": "http://localhost:8000"}
    config = load_config(file, {"model.max_new_tokens": "32"}, env=env)
    assert config.model.quantization == "4bit"  # env beats file
    assert config.model.max_new_tokens == 32  # flags beat both, strings coerced to the field type
    assert config.adapters == {"support": "/a/b", "legal": "/c"}
    assert config.asr.vad is False
    assert config.memory.url == "http://localhost:8000"


def test_config_file_from_env(tmp_path):
    file = tmp_path / "other.yaml"
    file.write_text("model:\n  id: /models/x\n")
    assert load_config(env={"MMAGENT_CONFIG": str(file)}).model.id == "/models/x"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model.quantization": "3bit"}, "model.quantization must be one of none, 8bit, 4bit; got '3bit'"),
        ({"model.max_new_tokens": "many"}, "model.max_new_tokens expects a whole number; got 'many'"),
        ({"model.max_new_tokens": "0"}, "model.max_new_tokens must be > 0"),
        ({"model.colour": "red"}, "unknown key(s) in section 'model': colour; valid keys:"),
        ({"modle.id": "x"}, "must look like SECTION.FIELD"),
    ],
)
def test_invalid_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides, env={})
    assert message in str(info.value)


def test_unknown_section_in_file(tmp_path):
    file = tmp_path / "mmagent.yaml"
    file.write_text("modle:\n  id: x\n")
    with pytest.raises(ConfigError, match="unknown config section"):
        load_config(file, env={})


def test_not_yaml(tmp_path):
    file = tmp_path / "mmagent.yaml"
    file.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(file, env={})


# ---- the command line: `--set` and named flags (mmagent.cli.options.build_config) -------------------
def test_unset_flags_do_not_mask_set(tmp_path, monkeypatch):
    """Issue 17: flags left unset (None) used to overwrite `--set` values for the same keys."""
    from mmagent.cli.options import build_config

    monkeypatch.chdir(tmp_path)
    config = build_config(None, ["model.max_new_tokens=5", "model.quantization=4bit"],
                          model__id=None, model__quantization=None, model__max_new_tokens=None)
    assert (config.model.max_new_tokens, config.model.quantization) == (5, "4bit")


def test_command_line_precedence_file_env_set_and_flags(tmp_path, monkeypatch):
    from mmagent.cli.options import build_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mmagent.yaml").write_text("model:\n  quantization: 8bit\n  max_new_tokens: 64\n  ocr: off\n")
    monkeypatch.setenv("MMAGENT_MODEL_QUANTIZATION", "none")
    monkeypatch.setenv("MMAGENT_MODEL_MAX_NEW_TOKENS", "32")
    config = build_config(None, None, model__quantization=None)
    assert (config.model.quantization, config.model.max_new_tokens, config.model.ocr) == ("none", 32, "off")
    config = build_config(None, ["model.max_new_tokens=7"], model__quantization="4bit")
    assert (config.model.quantization, config.model.max_new_tokens) == ("4bit", 7)  # flags beat env and file
    # the same value twice is fine; two different values for one field are refused, naming both
    assert build_config(None, ["model.quantization=4bit"], model__quantization="4bit").model.quantization == "4bit"
    with pytest.raises(Exception, match=r"--set model.quantization=8bit and the flag for model.quantization \('4bit'\) disagree"):
        build_config(None, ["model.quantization=8bit"], model__quantization="4bit")


@pytest.mark.parametrize(
    "sets, message",
    [
        (["model.quantization=bogus"], "model.quantization must be one of none, 8bit, 4bit; got 'bogus'"),
        (["model.max_new_tokens=lots"], "model.max_new_tokens expects a whole number; got 'lots'"),
        (["model.colour=red"], "unknown key(s) in section 'model': colour"),
    ],
)
def test_set_values_are_validated(sets, message, tmp_path, monkeypatch):
    from mmagent.cli.options import build_config

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        build_config(None, sets, model__quantization=None)
    assert message in str(info.value)


def test_a_section_with_every_entry_commented_out_is_empty(tmp_path):
    """The README sample's `adapters:` with its one entry commented out, and `model.ocr: off` as YAML 1.1 reads it."""
    file = tmp_path / "mmagent.yaml"
    file.write_text("model:\n  ocr: off\nadapters:   # name -> folder\n  # support: ./adapters/support\n")
    config = load_config(file, env={})
    assert config.adapters == {} and config.model.ocr == "off"
