"""``eolab claims check FILE``: what was found in a file and how it maps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eolab.analysis.claims._read import _choose_schema, read_raw, to_common
from eolab.analysis.claims._schemas import ClaimsWarning, detect_schema


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        if "join" in value:
            return f"{value.get('sep', '-')!r}.join({', '.join(value['join'])})"
        if "row_number" in value:
            return f"row number, prefix {value['row_number']!r}"
        if "value" in value:
            return f"constant {value['value']}"
        if "column" in value:
            return f"{value['column']}" + (f" [{value['unit']}]" if "unit" in value else "")
    return str(value)


def check_report(path: str | os.PathLike, *, layer: str | None = None, schema: str | None = None,
                 encoding: str | None = None, top: int = 15) -> str:
    """What ``eolab claims check FILE`` prints: the columns found, the schema chosen and how each
    common field maps, rows set aside, the crops with their HCAT3 codes and CAP groups, warnings."""
    import warnings

    from eolab.analysis import taxonomy

    raw = read_raw(path, layer, encoding=encoding)
    chosen = _choose_schema(raw, schema, path) or detect_schema(raw.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClaimsWarning)
        c = to_common(raw, chosen, source=Path(path).name)
    info = c.attrs["eolab:ingest"]
    lines = [f"file: {path}", f"rows: {len(raw)}, CRS {raw.crs.to_string() if raw.crs else '?'}",
             "columns found: " + ", ".join(str(x) for x in raw.columns if x != "geometry"),
             f"schema: {chosen.name} ({chosen.description or chosen.country}) from {chosen.source or 'the package'}",
             "mapping:"]
    for key, value in (chosen.spec.get("columns") or {}).items():
        lines.append(f"  {key:<10} <- {_describe(value)}")
    lines.append(f"  {'hcat3':<10} <- {info['taxonomy']}")
    lines.append(f"claims: {info['claims']}; not claims: {info['not_claims']}"
                 + "".join(f"\n  {n:>5}  {r}" for r, n in info["not_claims_by_reason"].items()))
    lines.append(f"crops mapped to HCAT3: {info['hcat3_share']:.1%} of claims")
    counts = (c.assign(group=[taxonomy.crop_group(h) for h in c.hcat3_code])
              .groupby(["crop_code", "crop_name", "hcat3_code", "hcat3_name", "group"], dropna=False)
              .size().sort_values(ascending=False))
    lines.append(f"crops ({len(counts)} kinds; top {min(top, len(counts))}): code, name → HCAT3, CAP group, claims")
    for (code, name, h, hname, group), n in counts.head(top).items():
        lines.append(f"  {code:>8}  {str(name)[:40]:<40} → {h or '-':>10} {hname or '(none)':<32} {group:<16} {n}")
    groups = c.hcat3_code.map(taxonomy.crop_group).value_counts()
    lines.append("CAP groups: " + ", ".join(f"{g} {n}" for g, n in groups.items()))
    lines += [f"warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)

