"""Derive the compact crop-code tables shipped in this folder from the EuroCrops release.

    python -m eolab.analysis.taxonomy.build_tables ../shared/data/eurocrops-hcat

Writes ``hcat3.csv`` (the taxonomy: code, name) and ``code_lists/<list>.csv`` (code, name, hcat3_code)
for each of the 27 national/regional tables: only the columns the package uses, exact duplicate rows
dropped, HCAT3 codes checked against the taxonomy (a malformed code in the source, e.g. 8 digits,
is replaced by the code of the row's HCAT3 name), mis-decoded names repaired (:func:`_repair`). ``code_lists/eolab_additions.csv`` and
``code_lists/eolab_demo.csv`` are written by hand (see ATTRIBUTION.md), not by this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent


def _redecode(name: str, encoding: str) -> str:
    try:
        return name.encode("cp1252").decode(encoding)
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def _repair(names: list[str]) -> list[str]:
    """Names mis-decoded in the source tables, repaired: UTF-8 read as Latin-1 (ftfy), and a whole
    list in cp1257 read as cp1252 (the Lithuanian one: 'Þieminiai' → 'Žieminiai'), found by the same
    check that guards claim files (:func:`eolab.analysis.claims.check_text`)."""
    import ftfy

    from eolab.analysis.claims import check_text

    names = [ftfy.fix_encoding(n) if n else n for n in names]  # only the encoding: quotes stay as published
    for note in check_text(names):
        for enc in ("cp1257", "cp1250"):
            if f"look like {enc} text read as cp1252" in note:
                names = [_redecode(n, enc) for n in names]
    return names


def build(src: Path, dest: Path = HERE) -> dict[str, int]:
    import pandas as pd

    hcat = pd.read_csv(src / "hcat_core" / "HCAT3.csv", dtype=str)
    hcat = hcat.rename(columns={"HCAT3_code": "code", "HCAT3_name": "name"})[["code", "name"]]
    hcat.to_csv(dest / "hcat3.csv", index=False)
    by_name = dict(zip(hcat.name, hcat.code))
    valid = set(hcat.code)
    counts = {}
    (dest / "code_lists").mkdir(exist_ok=True)
    for path in sorted((src / "country_mappings").glob("*.csv")):
        t = pd.read_csv(path, dtype=str).fillna("")
        code = t["original_code"] if "original_code" in t else ""
        name = t["original_name"] if "original_name" in t else t.get("original_name_DE", "")
        h = t["HCAT3_code"].str.strip()
        h = h.where(h.isin(valid), t["HCAT3_name"].str.strip().map(by_name).fillna(""))
        out = pd.DataFrame({"code": code, "name": _repair(list(name)), "hcat3_code": h}).drop_duplicates()
        out = out[out.hcat3_code != ""]
        out.to_csv(dest / "code_lists" / f"{path.stem.lower()}.csv", index=False)
        counts[path.stem.lower()] = len(out)
    return counts


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
