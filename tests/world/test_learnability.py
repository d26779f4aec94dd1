from jointssl.world.learnability import check_learnability

from .conftest import build_world


def test_supervised_beats_chance_and_random_features(tmp_path):
    manifest = build_world(str(tmp_path / "w"), sites=42, labelled_per_class=6, seed=0)
    report = check_learnability(manifest.url, folds=3)
    print("\n" + "\n".join(report.lines()))
    assert report.supervised > report.chance + 0.2
    assert report.supervised > report.random_cnn + 0.1
