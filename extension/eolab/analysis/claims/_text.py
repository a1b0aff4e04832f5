"""Mis-decoded text in claims files (a code page read as another), with the repair named."""

from __future__ import annotations

import re
from typing import Any

#: letters of the cp1252 reading that are where cp1257 (Baltic) / cp1250 (Central European) keep
#: their own letters (Ž ž Š š → Þ þ Ð ð, ą → à, ė → ë, ų → ø, ū → û, ł → ³, ą → ¹ ...). Þ/Ð are
#: Icelandic only and the symbols never occur inside a word, so they flag a wrong code page.
_SUSPECT = set("ÞþÐð¹³¾¼½ºª¿¤¦")


_LETTERS = {  # frequent letters of the languages written in each code page (for naming the repair)
    "cp1257": set("ąčęėįšųūžĄČĘĖĮŠŲŪŽāēģīķļņōĀĒĢĪĶĻŅŌõÕ"),
    "cp1250": set("čćďěňřšťůžźżłńśąęőűĺľŕČĆĎĚŇŘŠŤŮŽŹŻŁŃŚĄĘŐŰĹĽŔđĐ"),
}


def check_text(values: Any, *, column: str = "") -> list[str]:
    """Warnings about mis-decoded text in ``values`` (a column of names), each naming the repair:
    UTF-8 read as a single-byte code page (mojibake, found by ftfy), a Baltic or Central European
    code page read as cp1252/Latin-1, and characters already lost at export ('?' inside a word)."""
    import ftfy

    texts = sorted({str(v) for v in values if isinstance(v, str) and v})
    what = f"column {column!r}" if column else "names"
    out = []
    mojibake = []
    for t in texts:
        fixed, steps = ftfy.fix_encoding_and_explain(t)
        if fixed != t and steps and any(op == "decode" for op, _ in steps):
            mojibake.append((t, fixed, steps))
    if mojibake:
        t, fixed, steps = mojibake[0]
        enc = next((arg for op, arg in steps if op == "encode"), "latin-1")
        dec = next((arg for op, arg in steps if op == "decode"), "utf-8")
        if dec.replace("-", "") in ("windows1252", "cp1252") and enc.replace("-", "") in ("latin1", "iso88591"):
            # Bytes 0x80-0x9F read as Latin-1 say "a Windows code page", not which: cp1250 and cp1257
            # use them too, and cp1250's č reads as cp1252's è. Show each reading; the user knows the language.
            def readings(text: str) -> dict[str, list[str]]:
                out: dict[str, list[str]] = {}
                for page in ("cp1252", "cp1250", "cp1257"):
                    try:
                        out.setdefault(text.encode("latin-1").decode(page), []).append(page)
                    except (UnicodeEncodeError, UnicodeDecodeError):
                        continue
                return out

            # the example the code pages read differently (where they agree, it tells nothing)
            bad = max((x for x, _, _ in mojibake), key=lambda x: len(readings(x)))
            shown = "; ".join(f"encoding={'/'.join(repr(p) for p in pages)} gives {text!r}"
                              for text, pages in readings(bad).items())
            out.append(f"{len(mojibake)} values of {what} are a Windows code page read as Latin-1, e.g. {bad!r}: "
                       f"re-read with the file's code page ({shown}) — or add a .cpg file naming it")
        else:
            out.append(f"{len(mojibake)} values of {what} look mis-decoded ({dec} text read as {enc}), e.g. {t!r} → "
                       f"{fixed!r}: re-read with encoding='{dec}' (or repair with ftfy.fix_text)")
    garbled = {t for t, _, _ in mojibake}
    suspect = [t for t in texts if _SUSPECT & set(t) and t not in garbled]
    if suspect:
        joined = " ".join(suspect)
        best, score = None, 0
        for cand, letters in _LETTERS.items():
            try:
                redone = joined.encode("cp1252").decode(cand)
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            n = sum(ch in letters for ch in redone) - sum(ch in _SUSPECT for ch in redone)
            if n > score:
                best, score = cand, n
        if best:
            example = suspect[0]
            out.append(f"{len(suspect)} values of {what} look like {best} text read as cp1252, e.g. {example!r} → "
                       f"{example.encode('cp1252').decode(best)!r}: re-read with encoding='{best}' "
                       f"(read_claims(..., encoding='{best}'), eolab claims check --encoding {best}, or a .cpg file)")
    lost = [t for t in texts if re.search(r"\?(?=[^\W\d_])", t)]  # a "?" before a letter: "je?men"
    if lost:
        out.append(f"{len(lost)} values of {what} hold '?' inside a word, e.g. {lost[0]!r}: characters were lost "
                   "when the file was exported (not repairable here; the crop codes are used for the taxonomy)")
    return out

