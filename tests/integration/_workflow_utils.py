"""Helpers for the workflow notebook tests: run a template headless (scoring: eolab.demo.evaluate)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"


def member_urls(config, members=("pannonia", "danube", "tisza")) -> dict[str, str]:
    return {m: config.member_url(config.member(m)) for m in members}


def run_notebook(name: str, out: Path, **parameters) -> Path:
    """Execute ``workflows/<name>/<name>.ipynb`` with papermill; return the executed notebook."""
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{name}.executed.ipynb"
    papermill.execute_notebook(str(WORKFLOWS / name / f"{name}.ipynb"), str(executed), parameters=parameters,
                               cwd=str(out), progress_bar=False, kernel_name="python3")
    return executed
