"""jointssl.models.saved: weights + architecture, rebuilt in code; pickles refused unopened."""

from __future__ import annotations

import pickle

import pytest
import torch

from jointssl.errors import JointsslError
from jointssl.models import saved
from jointssl.models.config import ModelConfig, ObjectiveConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder

TINY = ModelConfig(backbone="resnet10t", shared_trunk=True, small_input_stem=False, embed_dim=8,
                   proj_hidden_dim=8, proj_dim=4, objective=ObjectiveConfig(name="byol"))
INPUTS = [ModalityInput("s2", 4, 16), ModalityInput("s1", 2, 16)]


class Payload:
    """A pickle that creates ``marker`` when unpickled: what an attacker's model file would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_bytes(marker) -> bytes:
    return pickle.dumps(Payload(str(marker)))


def test_the_payload_runs_code_when_unpickled(tmp_path):
    """The tests' payload really would run: unpickling it creates its marker."""
    pickle.loads(payload_bytes(tmp_path / "ran")).close()
    assert (tmp_path / "ran").exists()


def test_an_encoder_round_trips_with_a_shared_trunk_and_byol_heads(tmp_path):
    torch.manual_seed(0)
    encoder = MultiModalEncoder(TINY, INPUTS).eval()
    saved.save_encoder(encoder, str(tmp_path / "enc"))
    loaded = saved.load_encoder(str(tmp_path / "enc"), "test")
    assert isinstance(loaded, MultiModalEncoder) and loaded.config == TINY and not loaded.training
    assert loaded.predictors is not None and list(loaded.inputs.values()) == INPUTS
    batch = {"s2": torch.randn(3, 4, 16, 16), "s1": torch.randn(3, 2, 16, 16)}
    with torch.no_grad():
        a, b = encoder(batch), loaded(batch)
    for m in ("s2", "s1"):
        torch.testing.assert_close(a.embeddings[m], b.embeddings[m], rtol=0, atol=0)
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_the_small_input_stride_round_trips_and_older_specs_mean_stride_one(tmp_path):
    config = ModelConfig(backbone="resnet10t", small_input_stem=True, small_input_stride=2, embed_dim=8,
                         proj_hidden_dim=8, proj_dim=4)
    encoder = MultiModalEncoder(config, INPUTS).eval()
    saved.save_encoder(encoder, str(tmp_path / "enc"))
    loaded = saved.load_encoder(str(tmp_path / "enc"), "test")
    assert loaded.config.small_input_stride == 2
    assert loaded.encoders["s2"].stem[0].stride == (2, 2)
    spec = saved.encoder_spec(encoder)
    del spec["model_config"]["small_input_stride"]  # a model saved before the option existed
    assert saved.build_encoder(spec, "old").config.small_input_stride == 1


def test_a_pickled_model_folder_is_refused_unopened(tmp_path):
    folder = tmp_path / "old"
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: data\n")
    (folder / "data" / "model.pth").write_bytes(payload_bytes(tmp_path / "ran"))
    with pytest.raises(JointsslError, match="is a pickle") as err:
        saved.load_encoder(str(folder), "models:/jointssl-encoder/1")
    assert "jointssl pretrain" in str(err.value.hint)
    assert not (tmp_path / "ran").exists()


def test_a_pickle_in_place_of_the_weights_is_not_unpickled(tmp_path):
    folder = tmp_path / "enc"
    saved.save_encoder(MultiModalEncoder(TINY, INPUTS), str(folder))
    (folder / saved.WEIGHTS_FILE).write_bytes(payload_bytes(tmp_path / "ran"))
    with pytest.raises(JointsslError, match=f"cannot read {saved.WEIGHTS_FILE}"):
        saved.load_encoder(str(folder), "x")
    assert not (tmp_path / "ran").exists()


def test_weights_of_another_architecture_and_a_bad_spec_are_clear_errors(tmp_path):
    folder = tmp_path / "enc"
    saved.save_encoder(MultiModalEncoder(TINY, INPUTS), str(folder))
    other = tmp_path / "other"
    saved.save_encoder(MultiModalEncoder(TINY, INPUTS[:1]), str(other))
    (folder / saved.WEIGHTS_FILE).write_bytes((other / saved.WEIGHTS_FILE).read_bytes())
    with pytest.raises(JointsslError, match="do not fit the architecture"):
        saved.load_encoder(str(folder), "x")
    spec = (other / saved.SPEC_FILE).read_text().replace('"backbone"', '"backbon"')
    (other / saved.SPEC_FILE).write_text(spec)
    with pytest.raises(JointsslError, match="backbon"):
        saved.load_encoder(str(other), "x")
    with pytest.raises(JointsslError, match="not a model saved by jointssl"):
        saved.load_encoder(str(tmp_path / "nothing"), "x")
