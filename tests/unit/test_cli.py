"""The command line: bad input gives one clear line and exit code 1 or 2, never a traceback."""

import subprocess
import sys


def eolab(*args, env=None):
    return subprocess.run([sys.executable, "-m", "eolab", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def one_line_error(result, code=1):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_unknown_demo_size(tmp_path):
    line = one_line_error(eolab("demo-data", "--size", "huge", "--out", str(tmp_path / "d")))
    assert "unknown demo size 'huge'" in line and "small, default" in line
    assert not (tmp_path / "d" / "manifest.json").exists()


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line_error(eolab("demo-data", "--size", "small", "--out", str(blocker / "demo")))
    assert str(blocker / "demo") in line


def test_missing_configuration_file(tmp_path):
    line = one_line_error(eolab("status", "--config", str(tmp_path / "nope.yaml")))
    assert "nope.yaml does not exist" in line


def test_unknown_option_is_one_line_usage_error():
    line = one_line_error(eolab("catalog", "sideways"), code=2)
    assert "invalid choice: 'sideways'" in line


def test_status_of_a_stack_that_never_ran(tmp_path):
    result = eolab("status", "--run-dir", str(tmp_path / "run"), "--port-offset", "31000")
    assert result.returncode == 0
    states = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert states["postgres"] == "down" and states["member-pannonia"] == "down"


def test_templates_list_and_clone(tmp_path):
    listed = eolab("templates", "list")
    assert listed.returncode == 0
    for name in ("water-monitoring", "crop-type-map", "cap-parcel-checks"):
        assert f"{name}: " in listed.stdout
    dest = tmp_path / "my-water"
    cloned = eolab("templates", "clone", "water-monitoring", str(dest))
    assert cloned.returncode == 0, cloned.stderr
    assert {"README.md", "params.yaml", "water-monitoring.ipynb"} <= {p.name for p in dest.iterdir()}
    line = one_line_error(eolab("templates", "clone", "water-monitoring", str(dest)))
    assert "not empty" in line
    line = one_line_error(eolab("templates", "clone", "nope", str(tmp_path / "x")))
    assert "no template 'nope'" in line and "crop-type-map" in line
