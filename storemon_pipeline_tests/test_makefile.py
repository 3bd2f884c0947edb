"""The Makefile's own promises: a wrong .venv is rebuilt with a message; clean says what it removes."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60
    )


def test_a_venv_built_by_another_python_is_noticed_and_removed(tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\ncase \"$1\" in --version) echo 'Python 3.9.2';; *) exit 1;; esac\n")
    python.chmod(0o755)
    done = make("check-venv", f"VENV={venv}")
    assert done.returncode == 0, done.stderr
    assert f"{venv} was built with Python 3.9.2; storemon needs Python 3.11: rebuilding {venv}" in done.stdout
    assert not venv.exists()
    # A venv whose Python is gone is rebuilt too; a good one is left alone.
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "no-such-python")
    assert "rebuilding" in make("check-venv", f"VENV={venv}").stdout and not venv.exists()
    good = make("check-venv")  # the repository's own .venv, which runs these tests
    assert good.returncode == 0 and "rebuilding" not in good.stdout


def test_clean_says_what_it_removes_and_distclean_removes_more(tmp_path):
    state = tmp_path / "state"
    (state / "dagster").mkdir(parents=True)
    done = make("clean", f"STATE={state}")
    assert done.returncode == 0 and f"removing {state}/ (the local warehouse" in done.stdout and not state.exists()
    plan = make("-n", "distclean", f"STATE={state}", f"VENV={tmp_path / 'venv'}")  # -n: only say what it would run
    assert f"rm -rf {tmp_path / 'venv'} benchmarks/data" in plan.stdout and f"rm -rf {state}" in plan.stdout


def test_downloaded_reports_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "report-93c83202-b18d-48ef-b45b-07033e932683.csv"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ignored.returncode == 0
