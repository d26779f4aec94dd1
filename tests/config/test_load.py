"""The config loader: typed values, dotted overrides, and one clear error per mistake (key + file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from jointssl.config import ConfigError, JobConfig, flatten, load_config, load_job_config, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    mode: Literal["a", "b"] = "a"
    steps: int = field(default=10, metadata={"min": 1})
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    assert load_config(Outer) == Outer()


def test_file_and_overrides_are_typed(tmp_path):
    path = write(tmp_path, "name: run1\ninner:\n  lr: 0.1\n  tags: [a, b]\n")
    cfg = load_config(Outer, path, ["--inner.lr", "3e-4", "--inner.mode=b", "--maybe", "4"])
    assert cfg.name == "run1"
    assert cfg.inner.lr == pytest.approx(3e-4) and isinstance(cfg.inner.lr, float)
    assert cfg.inner.mode == "b" and cfg.inner.tags == ["a", "b"] and cfg.maybe == 4


@pytest.mark.parametrize(
    ("text", "overrides", "key", "words"),
    [
        ("inner:\n  lrr: 1\n", [], "inner.lrr", "unknown key; accepted keys here: lr, mode, steps, tags"),
        ("inner:\n  steps: many\n", [], "inner.steps", "expected an integer, got str 'many'"),
        ("inner:\n  steps: 0\n", [], "inner.steps", "below the minimum 1"),
        ("inner:\n  mode: c\n", [], "inner.mode", "'c' is not one of: 'a', 'b'"),
        ("inner: 3\n", [], "inner", "expected a mapping"),
        ("", ["--inner.steps", "2.5"], "inner.steps", "expected an integer"),
        ("", ["--nope.x", "1"], "nope", "unknown key"),
    ],
)
def test_errors_name_the_key_the_file_and_what_is_accepted(tmp_path, text, overrides, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(Outer, path, overrides)
    message = str(info.value)
    assert info.value.key == key
    assert words in message
    assert str(path) in message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, write(tmp_path, "a: [1,\n"))
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(Outer, write(tmp_path, "- 1\n- 2\n"))


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="has no value"):
        load_config(Outer, None, ["--name"])
    with pytest.raises(ConfigError, match="overrides look like"):
        load_config(Outer, None, ["name", "x"])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://host/x", "scheme 'ftp://' is not supported"),
        ("s3://", "names no bucket"),
        ("s3://ab/x", "too short"),
        ("s3://key:secret@bucket/x", "credentials do not belong"),
        ("", "expected a storage URL"),
    ],
)
def test_bad_storage_urls_are_rejected_with_the_key(url, words):
    with pytest.raises(ConfigError) as info:
        load_job_config(None, ["--storage.root", url] if url else ["--storage.root="])
    assert info.value.key == "storage.root"
    assert words in str(info.value)


def test_good_storage_urls(tmp_path):
    for url in (str(tmp_path), f"file://{tmp_path}", "s3://bucket/prefix"):
        assert load_job_config(None, ["--storage.root", url]).storage.root == url


def test_cross_field_rule_is_reported_with_its_full_key():
    with pytest.raises(ConfigError) as info:
        load_job_config(None, ["--stac.url", "localhost:8080"])
    assert info.value.key == "stac.url"


def test_env_storage_root_fills_only_an_unset_key(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTSSL_STORAGE_ROOT", "s3://envbucket/x")
    assert load_job_config().storage.root == "s3://envbucket/x"
    path = write(tmp_path, f"storage:\n  root: {tmp_path}\n")
    assert load_job_config(path).storage.root == str(tmp_path)
    assert load_job_config(None, ["--storage.root", "/elsewhere"]).storage.root == "/elsewhere"


def test_round_trip_to_plain_data():
    cfg = load_job_config(None, ["--run.seed", "7"])
    flat = flatten(to_dict(cfg))
    assert flat["run.seed"] == 7
    assert load_config(JobConfig, None, [f"--{k}={v}" for k, v in flat.items() if v is not None]) == cfg


def test_shipped_configs_load():
    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert files, "configs/ should ship at least one job config"
    for path in files:
        load_job_config(path)
