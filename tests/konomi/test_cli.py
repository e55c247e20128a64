"""``focusflow konomi``: retraining writes loadable weights; bad options exit 2."""

from __future__ import annotations

from focusflow.cli.main import main
from focusflow.konomi import FemtoModel


def test_train_writes_loadable_weights(tmp_path, capsys):
    out = tmp_path / "w.npz"
    main(["konomi", "train", "--out", str(out), "--steps", "10", "--seed", "1"])
    assert "held-out loss" in capsys.readouterr().out
    model = FemtoModel.load(out)
    assert model.meta["steps"] == 10
    assert model.nbytes() < 4 * 1024 * 1024


def test_serve_rejects_bad_options(capsys):
    for argv in (["--role", "gpu"], ["--dims", "10,10"], ["--dims", "a,b,c"]):
        try:
            main(["konomi", "serve", *argv])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{argv} was accepted")
        assert capsys.readouterr().err.startswith("error: ")
