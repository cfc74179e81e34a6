"""experiments/colab_tpu.ipynb runs: every code cell but the Colab install cell is executed,
in order, in one namespace, on CPU (conftest's 4 devices) with the notebook's `TINY = True`."""

import json
import os

import cv2
import matplotlib
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "experiments", "colab_tpu.ipynb")
INSTALL_TAG = "colab-install"


def _code_cells():
    with open(NOTEBOOK) as f:
        nb = json.load(f)
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_only_the_install_cell_is_colab_only():
    cells = _code_cells()
    install = [c for c in cells if INSTALL_TAG in c["metadata"].get("tags", [])]
    assert len(install) == 1 and cells[0] is install[0]
    # Shell and magic lines only there: the other cells are plain Python.
    for cell in cells[1:]:
        assert not any(line.lstrip().startswith(("!", "%")) for line in cell["source"])


def test_notebook_cells_run_on_cpu(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(REPO)  # as the install cell leaves Colab: in the checkout
    namespace = {"__name__": "__main__"}
    settings_done = False
    for i, cell in enumerate(_code_cells()):
        if INSTALL_TAG in cell["metadata"].get("tags", []):
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK}:cell{i}", "exec"), namespace)
        if "TINY = False" in source:  # the settings cell: the test's setting
            namespace.update(
                TINY=True,
                WORKDIR=str(tmp_path / "pose"),
                VIDEO=str(tmp_path / "talking.mp4"),
                SPEECH_SECONDS=1.2,
            )
            settings_done = True
    assert settings_done
    assert namespace["jax"].device_count() == 4  # trained data-parallel over all of them
    rows = namespace["results"]["rows"]
    assert all(0.0 <= r["hs"] <= 1.0 for r in rows.values())
    predicted = namespace["predicted"]
    assert predicted.shape == (int(1.2 * 25), 6) and np.isfinite(predicted).all()
    capture = cv2.VideoCapture(str(tmp_path / "talking.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames == namespace["result"].num_frames == 30
