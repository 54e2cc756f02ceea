"""A wheel (not only the editable install) carries what the package reads at run time."""

import os
import subprocess
import sys
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_wheel_ships_card_templates_metrics_and_feature_weights(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            REPO_ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = [name for name in os.listdir(tmp_path) if name.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    for template in ("gan.md", "seq2seq.md", "adapter.md"):
        assert f"hf_genxfer/model_cards/{template}" in names
    assert {"hf_genxfer/evaluation/metrics/fid.py", "hf_genxfer/evaluation/metrics/chrf.py"} <= names
    assert any(name.startswith("hf_genxfer/evaluation/weights/") and name.endswith(".safetensors") for name in names)
