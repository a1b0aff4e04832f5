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


def run_notebook_chains(chains: dict[str, list[tuple[str, Path, dict]]], workers: int = 2) -> None:
    """Run chains of notebooks, ``workers`` chains at a time (each chain's notebooks in order:
    e.g. the CAP checks after the crop map whose parcel series they reuse). Independent runs on 2
    cores overlap one's kernel start, imports and reads with another's computing."""
    from concurrent.futures import ThreadPoolExecutor

    def chain(steps):
        for name, out, parameters in steps:
            run_notebook(name, out, **parameters)

    with ThreadPoolExecutor(workers) as pool:
        futures = {key: pool.submit(chain, steps) for key, steps in chains.items()}
        errors = {}
        for key, future in futures.items():
            try:
                future.result()
            except Exception as exc:  # every chain finishes; the first failure is raised with its run
                errors[key] = exc
    if errors:
        (key, exc), *others = errors.items()
        raise RuntimeError(f"notebook run {key!r} failed"
                           + (f" (and {[k for k, _ in others]})" if others else "")) from exc
