"""Bad input, fuzzed: the config loader (YAML text, mappings) and the ``--section.key VALUE`` override parser
give a config or one :class:`ConfigError` with a message for every input, never another exception."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointssl.config.load import ConfigError, from_dict, load_config, parse_overrides
from jointssl.config.schema import JobConfig

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SECTIONS = {f.name: f.type for f in dataclasses.fields(JobConfig)}
KEYS = sorted({f"{s}.{f.name}" for s in SECTIONS for f in dataclasses.fields(getattr(JobConfig(), s))})

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                    st.sampled_from(["", "null", "[]", "{}", "nan", ".inf", "-1", "1e400", "2023-01-01", "s3://",
                                     "http://[::1", "ftp://x", "/tmp", "[1, 2", "{a: 1}", "~", "yes"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4),
                      max_leaves=12)
known_key = st.sampled_from(KEYS)


TALLY: Counter[tuple[str, str]] = Counter()
"""(test, 'configs' | 'errors') -> examples: what the fault table reports."""


def expect_config_or_error(build, test: str = "") -> JobConfig | None:
    try:
        config = build()
    except ConfigError as err:
        assert str(err).startswith("config key '") and err.problem, err
        TALLY[(test, "errors")] += 1
        return None
    assert isinstance(config, JobConfig)
    TALLY[(test, "configs")] += 1
    return config


def observed(test: str) -> str:
    return f"{TALLY[(test, 'configs')]} configs and {TALLY[(test, 'errors')]} ConfigErrors, no other exception"


@pytest.mark.faults(fault="bad input, fuzzed: config files (any YAML text), 200 examples (hypothesis)",
                    expected="a config or one ConfigError naming the key and the file; never another exception")
@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_yaml_text_gives_a_config_or_a_config_error(tmp_path, record_property, text):
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    expect_config_or_error(lambda: load_config(JobConfig, path), "yaml")
    record_property("observed", observed("yaml"))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_file_bytes_give_a_config_or_a_config_error(tmp_path, raw):
    path = tmp_path / "job.yaml"
    path.write_bytes(raw)
    expect_config_or_error(lambda: load_config(JobConfig, path))


@FUZZ
@given(tree=st.dictionaries(st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=8), st.integers()),
                            st.one_of(values, st.dictionaries(st.one_of(st.sampled_from(
                                [k.split(".")[1] for k in KEYS]), st.text(max_size=8)), values, max_size=5)),
                            max_size=5))
def test_any_mapping_gives_a_config_or_a_config_error(tree):
    config = expect_config_or_error(lambda: from_dict(JobConfig, tree, source="fuzz"))
    if config is not None:  # what was accepted is finite where it is a number
        assert all(math.isfinite(v) for v in _numbers(dataclasses.asdict(config)))


@FUZZ
@given(key=known_key, value=values)
def test_a_known_key_with_any_value_round_trips_through_yaml(tmp_path, key, value):
    section, name = key.split(".")
    path = tmp_path / "job.yaml"
    try:
        path.write_text(yaml.safe_dump({section: {name: value}}))
    except yaml.YAMLError:
        return
    expect_config_or_error(lambda: load_config(JobConfig, path))


override_args = st.lists(st.one_of(st.text(max_size=20), known_key.map(lambda k: f"--{k}"),
                                   st.tuples(known_key, st.text(max_size=20)).map(lambda kv: f"--{kv[0]}={kv[1]}"),
                                   st.sampled_from(["--", "-", "--=", "--a..b", "--run", "--run.name.x", "[", "]"])),
                         max_size=8)


@pytest.mark.faults(fault="bad input, fuzzed: command-line overrides (--section.key VALUE), 200 examples (hypothesis)",
                    expected="a config or one ConfigError naming the key; never another exception")
@FUZZ
@given(args=override_args)
def test_any_command_line_gives_a_config_or_a_config_error(record_property, args):
    expect_config_or_error(lambda: load_config(JobConfig, None, args), "overrides")
    record_property("observed", observed("overrides"))


@FUZZ
@given(args=override_args)
def test_the_override_parser_gives_pairs_or_a_config_error(args):
    try:
        pairs = parse_overrides(args)
    except ConfigError as err:
        assert err.problem
        return
    assert all(isinstance(k, str) for k, _ in pairs)


@pytest.mark.parametrize("text", ["run: {name: x}\nrun: {seed: 1}\n", "a: &a [*a]\n", "[" * 5000, "? [a]\n: 1\n",
                                  "1: 2\nrun: {}\n", "index: {group_cell_deg: .nan}\n", "index: {min_coverage: .inf}\n",
                                  "storage: {root: 'http://[::1'}\n", "\udcff: 1\n"])
def test_found_by_fuzzing(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    expect_config_or_error(lambda: load_config(JobConfig, path))


def _numbers(tree) -> list[float]:
    if isinstance(tree, dict):
        return [n for v in tree.values() for n in _numbers(v)]
    if isinstance(tree, (list, tuple)):
        return [n for v in tree for n in _numbers(v)]
    return [tree] if isinstance(tree, float) else []


