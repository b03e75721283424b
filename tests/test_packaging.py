"""The built wheel is the product: every subpackage and the shipped checkpoint are in it, and it
installs and runs from a fresh environment, away from the checkout.

The full smoke (generate + serve from the installed copy) is scripts/smoke_installed.sh, run by
.ci/run after `make test`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

BUILD_LIMIT_S = 60  # measured ~2.5 s on the 2-core machine; generous for a loaded CI box
PACKAGE_DIRS = {"backend": "flowvq", "shared": "flowvq_shared"}


def clean_copy(dest: Path) -> Path:
    """What a clean clone holds (tracked + untracked-not-ignored files), minus tests and docs."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    keep = ("backend/", "shared/", "pyproject.toml", "setup.py", "README.md", "LICENSE")
    for rel in files:
        src = REPO / rel
        if rel.startswith(keep) and src.is_file():  # a file deleted but not yet staged is gone
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, float]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = clean_copy(tmp / "src")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("flowvq-*.whl")
    return whl, took


def test_wheel_builds_quickly(wheel):
    _, took = wheel
    assert took < BUILD_LIMIT_S, f"building the wheel took {took:.1f} s"


def test_every_package_and_module_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    missing = []
    packages = 0
    for folder, top in PACKAGE_DIRS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            pkg = init.parent
            if "__pycache__" in pkg.parts:
                continue
            packages += 1
            for py in pkg.glob("*.py"):
                rel = py.relative_to(REPO / folder).as_posix()
                if f"{top}/{rel}" not in names:
                    missing.append(f"{top}/{rel}")
    assert packages > 10 and not missing, missing
    assert not any(n.startswith(("backend/", "shared/", "tests/")) for n in names)


def test_shipped_checkpoint_and_entry_point_are_in_the_wheel(wheel):
    z = zipfile.ZipFile(wheel[0])
    ckpt = REPO / "backend" / "assets" / "fcg_default.pt"
    assert z.getinfo("flowvq/assets/fcg_default.pt").file_size == ckpt.stat().st_size
    (ep,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "flowvq = flowvq.cli:main" in z.read(ep).decode()


def fresh_env(root: Path, whl: Path) -> Path:
    """A new venv with no flowvq but the wheel; dependencies reused from this venv by a .pth."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=60)
    py = root / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True,
                             check=True).stdout.strip()
    # a plain path line: this venv's own .pth files (the editable checkout) are not processed
    Path(purelib, "flowvq_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the checkout's editable install is visible through the .pth; leave it be
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--ignore-installed", "--no-deps", "--no-index", str(whl)], check=True,
                   timeout=120)
    return root


def test_the_installed_wheel_runs_away_from_the_checkout(wheel, tmp_path):
    env = fresh_env(tmp_path / "venv", wheel[0])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = ("import flowvq, flowvq_shared, flowvq.generate.pipeline, flowvq.training.corpus, "
             "flowvq.fcg.checkpoint as c; print(flowvq.__file__); print(flowvq_shared.__file__); "
             "print(c.DEFAULT_CHECKPOINT.is_file())")
    proc = subprocess.run([str(env / "bin" / "python"), "-c", probe], cwd=elsewhere, env=clean,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second, ckpt = proc.stdout.split()
    assert first.startswith(str(env)) and second.startswith(str(env)), proc.stdout
    assert ckpt == "True"
    proc = subprocess.run([str(env / "bin" / "flowvq"), "--version"], cwd=elsewhere, env=clean,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("flowvq "), proc.stderr
