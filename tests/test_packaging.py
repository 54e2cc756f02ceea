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


def test_a_fresh_venv_with_only_the_wheel_runs_the_demo_and_copies_recipes(tmp_path):
    """The user's path: `pip install` of the built wheel (torch first, then the pinned stack), nothing else."""
    wheels = tmp_path / "wheels"
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
            str(wheels),
            REPO_ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = list(wheels.glob("*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, capture_output=True, timeout=600)
    constraints = os.path.join(REPO_ROOT, "constraints.txt")
    subprocess.run([*pip, "-c", constraints, str(wheel)], check=True, capture_output=True, timeout=600)
    work = tmp_path / "elsewhere"  # not the checkout: nothing may be read from it
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(TQDM_DISABLE="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    genxfer = str(venv / "bin" / "genxfer")

    def run(*args):
        result = subprocess.run([genxfer, *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    where = subprocess.run(
        [python, "-c", "import hf_genxfer; print(hf_genxfer.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert str(venv) in where  # the installed wheel, not the checkout
    listing = run("recipes")
    assert "gan_digits_pretrain" in listing and "accelerate/multi_process_cpu" in listing
    assert "Wrote mine.yaml" in run("recipes", "gan_digits_transfer_lora", "--out", "mine.yaml")
    assert "lora:" in (work / "mine.yaml").read_text()
    summary = run("demo", "--quick", "--out", "demo_out")
    assert "Demo finished" in summary
    assert (work / "demo_out" / "gan_digits" / "model.safetensors").is_file()
    assert (work / "demo_out" / "s2s_num2words_en" / "README.md").is_file()
