"""Issue 10: the README's tour runs as shown on a fresh clone. Every ``$ command`` of its
``console`` block runs in a copy of examples/ through a shell, and what it prints must be
what the README shows, times and rates aside (they are masked on both sides)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import ROOT

README = ROOT / "README.md"
# Figures that differ from run to run: times, rates, memory, bench ratios.
_VARIES = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|s|files/s|MB/s in|MB/s|GB/s|MiB|x copy|x)\b")


def tour_steps(text: str) -> list[tuple[str, list[str]]]:
    """(command, the lines the README shows after it) for the first ``console`` block."""
    block = text.split("```console\n", 1)[1].split("\n```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    lines = iter(block.splitlines())
    for line in lines:
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\"):
                cmd = cmd[:-1] + " " + next(lines).strip()
            steps.append((cmd, []))
        elif line.strip() and steps:
            steps[-1][1].append(line)
    return steps


def masked(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        line = _VARIES.sub("<n>", line)
        if set(line.strip()) <= {"─", "━", "-"}:
            line = "<rule>"
        out.append(" ".join(line.split()))
    return [ln for ln in out if ln]


@pytest.fixture
def fresh_clone(tmp_path):
    """The shipped examples in a fresh folder, and `poolcli` on PATH as this Python's."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "poolcli"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m poolcli "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "80", "PYTHONPATH": str(ROOT)}
    return tmp_path, env


def run_step(cmd: str, cwd: Path, env: dict, status: list[int]) -> list[str]:
    # `echo $?` shows the status of the command before it, as in a shell session
    if cmd.strip() == "echo $?":
        return [str(status[-1])]
    p = subprocess.run(["bash", "-c", cmd + " 2>&1"], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=300)
    status.append(p.returncode)
    return p.stdout.splitlines()


def test_the_tour_names_only_shipped_files_or_files_it_makes():
    steps = tour_steps(README.read_text())
    assert len(steps) >= 6
    text = " ".join(c for c, _ in steps)
    assert "photos/" not in text


@pytest.mark.slow  # runs every tour command as a process, bench included (~20 s)
def test_the_readme_tour_runs_as_shown(fresh_clone):
    cwd, env = fresh_clone
    status: list[int] = []
    for cmd, shown in tour_steps(README.read_text()):
        got = run_step(cmd, cwd, env, status)
        assert masked(got) == masked(shown), f"$ {cmd}\n" + "\n".join(got)
