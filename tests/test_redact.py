"""jointssl.redact: URL passwords, signed-URL parameters and secret environment values never reach what
jointssl writes out (the config as MLflow params, job summaries)."""

from __future__ import annotations

from jointssl.config import flatten, load_job_config, to_dict
from jointssl.redact import MASK, redact, redact_tree


def test_url_passwords_and_signatures_are_masked():
    assert redact("postgresql://u:JOINTSSL-FAKE-PW@db:5432/x") == f"postgresql://u:{MASK}@db:5432/x"
    assert redact("see http://user:pw@h/p and s3://b/k") == f"see http://user:{MASK}@h/p and s3://b/k"
    signed = "https://a.blob.core.windows.net/c/x.tif?st=2024&se=2025&sig=JOINTSSL%2BFAKE&sv=1"
    assert redact(signed) == f"https://a.blob.core.windows.net/c/x.tif?st=2024&se=2025&sig={MASK}&sv=1"
    assert "JOINTSSL" not in redact("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKJOINTSSL&X-Amz-Signature=JOINTSSL")
    assert redact("s3://bucket/prefix, http://127.0.0.1:8333/x, plain text") == (
        "s3://bucket/prefix, http://127.0.0.1:8333/x, plain text")  # nothing secret: unchanged


def test_secret_environment_values_are_masked(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "JOINTSSL-FAKE-SECRET-1")
    monkeypatch.setenv("JOINTSSL_PGSTAC_DSN", "postgresql://u:JOINTSSL-FAKE-PW-2@127.0.0.1/db")
    monkeypatch.setenv("JOINTSSL_STORAGE_ROOT", "/not/secret")
    text = "key JOINTSSL-FAKE-SECRET-1; dsn password JOINTSSL-FAKE-PW-2 alone; root /not/secret"
    assert redact(text) == f"key {MASK}; dsn password {MASK} alone; root /not/secret"
    assert redact_tree({"a": ["JOINTSSL-FAKE-SECRET-1", 3], "JOINTSSL-FAKE-PW-2": None}) == {"a": [MASK, 3], MASK: None}


def test_config_params_carry_no_url_password():
    config = load_job_config(None, ["--tracking.uri", "http://mlflow:JOINTSSL-FAKE-PW@127.0.0.1:5000",
                                    "--stac.url", "http://u:JOINTSSL-FAKE-PW@127.0.0.1:8080/"])
    params = flatten(to_dict(config))
    assert params["tracking.uri"] == f"http://mlflow:{MASK}@127.0.0.1:5000"
    assert not [k for k, v in params.items() if "JOINTSSL-FAKE" in str(v)]
    assert config.tracking.uri == "http://mlflow:JOINTSSL-FAKE-PW@127.0.0.1:5000"  # the job itself still has it
