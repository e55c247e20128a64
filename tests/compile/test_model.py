"""The ONNX model against the numpy forward pass, the runner's refusals, the files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from focusflow.cli.main import main
from focusflow.compile.forward import forward_numpy
from focusflow.compile.pipeline import write
from focusflow.compile.runner import CompiledModel
from focusflow.core.errors import InvalidParameterError

from .helpers import padded_contexts

REPORT_FIELDS = {
    "d_star",
    "d_star_interval",
    "h_star",
    "L_star_raw",
    "L_star",
    "kappa",
    "eps",
    "diameter_estimate",
    "parameters",
    "files",
    "timings",
    "kl",
    "semcons",
    "exact_hops",
}


@pytest.fixture(scope="module")
def model_dir(small_compiled, tmp_path_factory):
    g, c = small_compiled
    out = tmp_path_factory.mktemp("model")
    write(c, g, out, eval_contexts=8)
    return out


def test_onnx_equals_forward_numpy(small_compiled, model_dir):
    _, c = small_compiled
    model = CompiledModel.load(model_dir)
    batch = padded_contexts(model.vocab, seed=4)
    got = model.predict(batch)
    want = forward_numpy(c.weights, batch)
    assert got.shape == (6, model.vocab) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert got.min() > 0  # full support: KL against it is finite


def test_single_particle_keeps_mass_at_the_context(small_compiled):
    _, c = small_compiled
    one = forward_numpy(c.weights, np.array([[3]]))
    np.testing.assert_allclose(one.sum(), 1.0, atol=1e-5)
    assert one[0].argmax() == 3 or one[0, 3] > np.median(one[0])


def test_runner_refuses_badpadded_contexts(model_dir):
    model = CompiledModel.load(model_dir)
    with pytest.raises(InvalidParameterError, match="only padding"):
        model.predict(np.array([[1, 2], [-1, -1]]))
    with pytest.raises(InvalidParameterError, match=r"at \[0, 1\] is out of range: use 0..255"):
        model.predict(np.array([[1, model.vocab]]))
    with pytest.raises(InvalidParameterError, match="out of range"):
        model.predict(np.array([[-2]]))
    with pytest.raises(InvalidParameterError, match="integers"):
        model.predict(np.array([[1.0]]))
    assert model.predict([4, -1]).shape == (1, model.vocab)


def test_report_has_the_fields(model_dir):
    report = json.loads((model_dir / "report.json").read_text())
    assert set(report) >= REPORT_FIELDS
    assert report["h_star"] == 2 and sorted(report["semcons"]) == ["rel:a", "rel:b"]
    assert report["exact_hops"] == 3
    assert report["kl"]["contexts"] == 8
    assert np.isfinite(report["kl"]["kl_mean"]) and report["kl"]["kl_median"] >= 0
    assert report["files"]["model.onnx"] > 0


def test_cli_writes_the_three_files(tmp_path, capsys):
    edges = tmp_path / "g.tsv"
    edges.write_text("a\tb\nb\tc\nc\ta\nc\td\nd\te\n")
    out = tmp_path / "m"
    main(["compile", "--graph", str(edges), "--out", str(out), "--eval-contexts", "4", "--json"])
    assert {p.name for p in out.iterdir()} == {"model.onnx", "vocab.tsv", "report.json"}
    report = json.loads(capsys.readouterr().out)
    assert report["graph"]["particles"] == 5 and report["h_star"] == 1
    assert (out / "vocab.tsv").read_text().splitlines()[0] == "0\ta"


def test_cli_error_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compile", "--graph", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_external_weights_answer_like_embedded(small_compiled, model_dir, tmp_path, monkeypatch):
    """Past EXTERNAL_ABOVE bytes the weights are streamed to model.onnx.data as
    the model is built (no in-memory copy of them, no 2 GiB protobuf); the
    model then answers exactly as the single-file one does."""
    import focusflow.compile.onnx_export as onnx_export

    g, c = small_compiled
    monkeypatch.setattr(onnx_export, "EXTERNAL_ABOVE", 0)
    monkeypatch.setattr(onnx_export, "EXTERNAL_MIN", 64)
    report = write(c, g, tmp_path, eval_contexts=0)
    assert set(report["files"]) == {"model.onnx", "model.onnx.data", "vocab.tsv"}
    assert report["files"]["model.onnx"] < 100_000 < report["files"]["model.onnx.data"]
    assert not (model_dir / "model.onnx.data").exists()
    batch = padded_contexts(c.weights.vocab, seed=9)
    got = CompiledModel.load(tmp_path).predict(batch)
    want = CompiledModel.load(model_dir).predict(batch)
    np.testing.assert_array_equal(got, want)
