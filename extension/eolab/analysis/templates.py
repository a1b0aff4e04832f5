"""The template gallery: list the workflow templates and clone one into a workspace.

A template is a folder of ``workflows/`` holding ``<name>.ipynb`` (with a cell tagged
``parameters``), ``README.md`` and ``params.yaml``. Templates are found in, in order:
``$EOLAB_TEMPLATES_DIR``, the source tree next to the package (``<repo>/workflows``), and
``<sys.prefix>/share/eolab/workflows`` (where a wheel would install them as data files).
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eolab.errors import EolabError

REQUIRED = ("README.md", "params.yaml")


def templates_dir() -> Path:
    """The folder holding the templates (see the module docstring for the search order)."""
    candidates = []
    from eolab import settings

    env = settings.client().templates_dir
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[3] / "workflows")  # extension/eolab/analysis -> repo
    candidates.append(Path(sys.prefix) / "share" / "eolab" / "workflows")
    for c in candidates:
        if c.is_dir() and any(_is_template(p) for p in c.iterdir()):
            return c
    raise EolabError("no workflow templates found",
                     hint="set EOLAB_TEMPLATES_DIR to the workflows/ folder of an eolab checkout")


def _is_template(path: Path) -> bool:
    return path.is_dir() and (path / f"{path.name}.ipynb").exists() and all((path / f).exists() for f in REQUIRED)


def _summary(readme: Path) -> tuple[str, str]:
    """The README's title and its first paragraph (wrapped lines joined)."""
    title, paragraph = readme.parent.name, []
    for line in readme.read_text().splitlines():
        s = line.strip()
        if s.startswith("# ") and title == readme.parent.name:
            title = s[2:].strip()
        elif s and not s.startswith("#"):
            paragraph.append(s)
        elif paragraph:
            break
    return title, " ".join(paragraph)


def list_templates() -> list[dict]:
    """One dict per template: name, title, summary, path, notebook, parameters (defaults)."""
    import yaml

    root = templates_dir()
    out = []
    for path in sorted(p for p in root.iterdir() if _is_template(p)):
        title, summary = _summary(path / "README.md")
        params = yaml.safe_load((path / "params.yaml").read_text()) or {}
        out.append({"name": path.name, "title": title, "summary": summary, "path": str(path),
                    "notebook": f"{path.name}.ipynb", "parameters": params})
    return out


def _plain(value: Any) -> Any:
    """YAML's dates as the ISO strings a notebook would write (``2026-03-01``)."""
    import datetime as dt

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def parameters(template: str, namespace: Mapping[str, Any] | None = None) -> dict:
    """A template's parameters: its ``params.yaml``, with what the notebook or papermill set on top.

    ``params.yaml`` is the one place the defaults are written. The notebook's parameters cell names
    each parameter with the value ``...`` (take params.yaml's); a value set there, or injected by
    papermill (``-p NAME VALUE``), wins. The params.yaml of a cloned template in the working directory
    (next to its notebook) is used when there is one, else the installed template's.
    """
    import yaml

    local = Path.cwd()
    folder = local if (local / f"{template}.ipynb").exists() and (local / "params.yaml").exists() else None
    if folder is None:
        known = {t["name"]: t for t in list_templates()}
        if template not in known:
            raise EolabError(f"no template {template!r}", hint="templates: " + ", ".join(sorted(known)))
        folder = Path(known[template]["path"])
    source = folder / "params.yaml"
    try:
        defaults = _plain(yaml.safe_load(source.read_text()) or {})
    except yaml.YAMLError as exc:
        raise EolabError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}",
                         hint="fix it, or take the template's own (templates clone --force)") from None
    if not isinstance(defaults, dict):
        raise EolabError(f"{source} holds a {type(defaults).__name__}, not 'name: value' lines",
                         hint="each parameter on its own line: 'resolution: 10'")
    given = {k: _typed(k, v, defaults[k]) for k, v in (namespace or {}).items() if k in defaults and v is not ...}
    _warn_misspelt(template, namespace or {}, defaults)
    return {**defaults, **given}


def _typed(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of its default: papermill passes ``-p bbox "[...]"`` as text, and a
    value of another type fails cells later with a library's error."""
    import datetime as dt

    import yaml

    if value is None:
        return value
    if default is None:
        if isinstance(value, str) and value.strip()[:1] in "[{":  # -p bbox "[20.6, 47.6, 20.7, 47.7]"
            try:
                return _plain(yaml.safe_load(value))
            except yaml.YAMLError:
                pass
        return value
    if isinstance(default, list) and len(default) == 2 and isinstance(value, str) and "/" in value:
        return [part.strip() for part in value.split("/", 1)]  # -p period_a 2026-03-01/2026-05-31
    if isinstance(default, str) and "/" in default and isinstance(value, (list, tuple)) and len(value) == 2:
        return "/".join(str(_plain(v)) for v in value)  # datetime=[start, end] for 'start/end'
    if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, numbers.Real) \
            and not isinstance(value, bool):
        return value.item() if hasattr(value, "item") else value  # numpy numbers as Python's
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = _plain(yaml.safe_load(value))
        except yaml.YAMLError:
            pass
    # text parameters also take several (collections), paths and dates
    kinds = {bool: (bool,), int: (int, float), float: (int, float), list: (list, tuple), dict: (dict,),
             str: (str, os.PathLike, list, tuple, dt.date)}
    wanted = next((k for t, k in kinds.items() if isinstance(default, t)), None)
    if wanted is None or (isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)):
        return list(value) if isinstance(value, tuple) else value
    raise EolabError(f"parameter {name}={value!r} is not {_kind_word(default)} like its default {default!r}",
                     hint=f"e.g. -p {name} {default!r}" if not isinstance(default, (list, dict))
                     else f"e.g. -p {name} '{default}'")


def _kind_word(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "a mapping",
            str: "text"}.get(type(value), type(value).__name__)


def _warn_misspelt(template: str, namespace: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Warn about a value whose name is one letter or so away from a parameter (``-p catalogs URL``):
    the notebook's globals hold everything else too, so only near-misses can be told apart."""
    import difflib
    import warnings

    for name, value in namespace.items():
        # only what papermill can inject (YAML values): a re-run parameters cell also sees the
        # notebook's own objects (a `catalogue` client), which are not misspelt parameters
        if name in defaults or name.startswith("_") or not isinstance(value, (str, int, float, list, dict, type(None))):
            continue
        close = difflib.get_close_matches(name, list(defaults), n=1, cutoff=0.8)
        if close:
            warnings.warn(f"{name!r} is not a parameter of {template} and is ignored; did you mean {close[0]!r}? "
                          f"(parameters: {', '.join(defaults)})", UserWarning, stacklevel=3)


def clone(name: str, dest: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
    """Copy template ``name`` (notebook, README, params) to ``dest`` (default ``./<name>``); return the
    new folder. Notebook outputs are stripped. Refuses to overwrite an existing folder unless asked."""
    import nbformat

    known = {t["name"]: t for t in list_templates()}
    if name not in known:
        raise EolabError(f"no template {name!r}", hint="templates: " + ", ".join(sorted(known)))
    src = Path(known[name]["path"])
    target = Path(dest) if dest is not None else Path.cwd() / name
    if target.exists() and not target.is_dir():
        raise EolabError(f"{target} is a file, not a folder", hint="choose another destination")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise EolabError(f"{target} already exists and is not empty",
                         hint="choose another destination, or overwrite with --force (clone(..., overwrite=True))")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EolabError(f"cannot create {target}: {exc.strerror or exc}",
                         hint="choose a destination in a folder you may write to") from None
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            if f.suffix == ".ipynb":
                nb = nbformat.read(f, as_version=4)
                for cell in nb.cells:
                    if cell.cell_type == "code":
                        cell.outputs, cell.execution_count = [], None
                nbformat.write(nb, target / f.name)
            else:
                shutil.copy2(f, target / f.name)
    (target / ".eolab-template.json").write_text(json.dumps({"template": name, "source": str(src)}) + "\n")
    return target
