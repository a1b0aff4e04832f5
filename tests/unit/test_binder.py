"""The Binder environment stays in step with the project's pinned versions."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            name, _, version = line.partition("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_binder_requirements_pin_exactly_the_project_constraints():
    assert pins(ROOT / "binder" / "requirements.txt") == pins(ROOT / "constraints.txt")


def test_binder_scripts_are_executable_bash():
    for name in ("postBuild", "start"):
        script = ROOT / "binder" / name
        assert script.stat().st_mode & 0o111, f"{name} is not executable"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
