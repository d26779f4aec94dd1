"""'jointssl infer' refuses what it cannot do before starting anything: exit 2 for bad configuration
(no area, sensors that do not match the classifier), exit 1 with a hint for a missing model."""

from __future__ import annotations

from jointssl.cli import main
from jointssl.sensors.registry import _preset_path


def test_no_area_is_exit_2(infer_world, capsys):
    assert main(["infer", *infer_world.args()]) == 2
    assert "infer.area" in capsys.readouterr().err


def test_unknown_model_is_exit_1_with_what_exists(infer_world, capsys):
    code = main(["infer", *infer_world.args("--infer.bbox", "[-97, 33, -96, 34]",
                                            "--infer.model", "models:/methane-classifier@nope")])
    err = capsys.readouterr().err
    assert code == 1 and "methane-classifier@nope" in err and "exists with versions [1]" in err
    code = main(["infer", *infer_world.args("--infer.bbox", "[-97, 33, -96, 34]",
                                            "--infer.model", "models:/other@champion")])
    assert code == 1 and "no registered model 'other'" in capsys.readouterr().err


def test_sensors_not_matching_the_classifier_are_exit_2(infer_world, tmp_path, capsys):
    preset = tmp_path / "preset.yaml"
    preset.write_text(_preset_path("world").read_text().replace("chip_size: 64", "chip_size: 48"))
    code = main(["infer", *infer_world.args("--infer.bbox", "[-97, 33, -96, 34]", "--index.preset", str(preset))])
    err = capsys.readouterr().err
    assert code == 2 and "index.preset" in err and "naip: chip_size is 48, the model was trained on 64" in err
    code = main(["infer", *infer_world.args("--infer.bbox", "[-97, 33, -96, 34]", "--infer.modalities", "[landsat]")])
    assert code == 2 and "infer.modalities" in capsys.readouterr().err
