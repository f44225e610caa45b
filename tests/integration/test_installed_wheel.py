"""The wheel works installed outside the checkout: `cctv settings`, `cctv topics list` and
`cctv worker --help` run from an unrelated directory and find the package's own configuration.

How, without a network:
1. Build. The installable tree (pyproject.toml, README.md and the packages pyproject.toml
   names) is copied to a temporary directory, so no build/ or *.egg-info lands in the checkout,
   and `pip wheel --no-deps --no-build-isolation --no-index` builds it with the setuptools of
   the environment running the tests (the dev extra pins one that builds wheels by itself).
   Only where that setuptools cannot (older than 70.1 without the `wheel` package) does pip
   fall back to an isolated build, which fetches setuptools from the package index.
2. Install. A fresh venv (`python -m venv --without-pip`, no system site-packages) gets the
   wheel with `pip --python <fresh> install --no-deps --no-index`. Its dependencies are not
   downloaded: a `.pth` file appends this environment's site-packages to the fresh venv's
   sys.path. Python does not run the .pth files of a directory added that way, so the editable
   install of the checkout stays out, and the fresh venv's own site-packages comes first: the
   test checks that `cctv` is imported from the installed wheel, not the checkout.
3. Run the console script from an empty temporary directory, with none of our settings in the
   environment, and check what it prints.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def can_build_offline() -> bool:
    """setuptools >= 70.1 has bdist_wheel built in; older ones need the `wheel` package."""
    version = tuple(int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def build_wheel(tmp: Path) -> Path:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        pattern.split(".")[0].rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", pyproject["project"]["readme"]):
        shutil.copy2(REPO_ROOT / name, source / name)
    for package in sorted(packages):
        shutil.copytree(
            REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    isolation = ["--no-build-isolation", "--no-index"] if can_build_offline() else []
    dist = tmp / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", dist, source],
        cwd=tmp,
    )
    [wheel] = dist.glob("cctv_backbone-*.whl")
    return wheel


def test_installed_wheel_runs_from_another_directory(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "cctv = cctv_cli.main:main" in archive.read(entry_points).decode()
    for shipped in (
        "cctv/config/topics.yaml",
        "cctv/config/provinces.yaml",
        "cctv/config/campaigns/moi-2563.yaml",
        "cctv_cli/main.py",
        "schemas/avro/camera_registration/v1.avsc",
        # The dashboard works offline: pages, scripts, the chart library, the font, licences.
        "services/dashboard/templates/base.html",
        "services/dashboard/templates/fragments/grid.html",
        "services/dashboard/static/dashboard.js",
        "services/dashboard/static/vendor/uplot/uPlot.iife.min.js",
        "services/dashboard/static/vendor/uplot/LICENSE",
        "services/dashboard/static/vendor/sarabun/sarabun-thai-400-normal.woff2",
        "services/dashboard/static/vendor/sarabun/LICENSE",
    ):
        assert shipped in names, f"{shipped} is not in {wheel.name}"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index"]
        + [wheel],
        cwd=tmp_path,
    )
    fresh_site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
        ).strip()
    )
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (fresh_site / "cctv_test_dependencies.pth").write_text("\n".join(ours) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CCTV_", "PYTHON"))
        and k not in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    }
    cctv = venv / "bin" / "cctv"

    where = run(
        [python, "-c", "import cctv, cctv_cli; print(cctv.__file__)"], cwd=elsewhere, env=env
    )
    assert Path(where.strip()).is_relative_to(fresh_site), f"imported {where} instead"

    settings = yaml.safe_load(run([cctv, "settings"], cwd=elsewhere, env=env))
    for path in (
        settings["kafka"]["topics_file"],
        settings["campaign_file"],
        settings["provinces_file"],
    ):
        assert Path(path).is_relative_to(fresh_site / "cctv" / "config"), path
        assert Path(path).is_file(), path
    # Written data: relative to the working directory, not into site-packages.
    assert settings["data_dir"] == "var"
    assert settings["clickhouse"]["chdb_path"] == "var/chdb"
    assert settings["processors"]["datadir"] == "var/faust"

    topics = run([cctv, "topics", "list"], cwd=elsewhere, env=env).splitlines()
    from tests.integration.test_cli import registry_topics

    assert len(topics) == len(registry_topics())
    assert any(
        line.split()[:2] == ["camera_registrations", "cctv.inbound.camera-registrations.v1"]
        for line in topics
    ), topics

    worker_help = run([cctv, "worker", "--help"], cwd=elsewhere, env=env)
    assert worker_help.startswith("usage: cctv worker")
    assert "--loglevel" in worker_help
    assert "usage: cctv" in run([python, "-m", "cctv_cli", "--help"], cwd=elsewhere, env=env)

    assert not any(elsewhere.iterdir()), "a read-only command wrote files"
