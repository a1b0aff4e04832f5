"""lonboard's front end without its CDN: the country map's two files that lonboard 0.17 fetches from
cdn.jsdelivr.net when a map is first shown (developmentseed/lonboard#457) — the Parquet decoder's
WebAssembly (parquet-wasm) and the polygon triangulation worker (@geoarrow/geoarrow-js) — are put
into the widget's own JavaScript as data: URLs, so a map draws with no request leaving the hub.

The files come from npm (hub_config/package.json; ``make install`` installs them). lonboard 0.17's
bundle carries parquet-wasm 0.9.0's JavaScript half, and 0.9.0 is not on every npm registry; 0.8.0's
WebAssembly is used with it (only that pair, which the browser test draws with, is accepted). Its
imports are those of 0.9.0 but for three asynchronous helpers (fetch, setTimeout, clearTimeout:
reading Parquet from a URL) that 0.9.0 names with another hash; the map never calls them: each gets
a stub that throws, naming itself. Its exports lack the closure callbacks that 0.9.0's JavaScript
names with another hash, and one writer option: only asynchronous reads and Parquet writing use
them, which the map does not. tests/e2e/test_country_map_browser.py checks that the map draws
offline.

Written here rather than taken from a library because lonboard has no setting for these URLs; the
text it replaces is checked, and where it is not found lonboard's bundle is used as it is (CDN)."""

from __future__ import annotations

import base64
import functools
import json
import re
import warnings
from pathlib import Path

WASM = Path("parquet-wasm") / "esm" / "parquet_wasm_bg.wasm"
WASM_PACKAGE = Path("parquet-wasm") / "package.json"
EARCUT = Path("@geoarrow") / "geoarrow-js" / "dist" / "earcut-worker.min.js"
# (parquet-wasm of lonboard's JavaScript, of the WebAssembly binary): pairs the browser test draws with
VERIFIED = {("0.9.0", "0.8.0")}
_VERSION = re.compile(r'(\w+)="(\d+\.\d+\.\d+)",\w+=`https://cdn\.jsdelivr\.net/npm/parquet-wasm@\$\{\1\}/')
_WASM_URL = re.compile(r"`https://cdn\.jsdelivr\.net/npm/parquet-wasm@\$\{\w+\}/esm/parquet_wasm_bg\.wasm`")
_HASH = re.compile(r"_[0-9a-f]{16}$")
_EARCUT_URL = re.compile(r'"https://cdn\.jsdelivr\.net/npm/@geoarrow/geoarrow-js@[\d.]+/dist/earcut-worker\.min\.js"')
_IMPORTS = '"./parquet_wasm_bg.js":{__proto__:null,'


def assets_dir() -> Path | None:
    """Where the two files are: ``$EOLAB_MAP_ASSETS_DIR``, else hub_config/node_modules (None: no checkout)."""
    from eolab import settings
    from eolab.errors import ServiceError

    configured = settings.client().map_assets_dir
    if configured:
        return Path(configured).expanduser()
    try:
        return settings.hub_config_dir() / "node_modules"
    except ServiceError:
        return None


def wasm_imports(wasm: bytes) -> list[tuple[str, str]]:
    """(module, name) of each import of a WebAssembly binary (its import section, id 2)."""
    if wasm[:4] != b"\0asm":
        raise ValueError("not a WebAssembly binary")
    try:
        return _imports(wasm)
    except IndexError:
        raise ValueError("a truncated WebAssembly binary") from None


_VALUE_TYPES = {0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F}  # i32 i64 f32 f64 v128 funcref externref


def _imports(wasm: bytes) -> list[tuple[str, str]]:

    def leb(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = wasm[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    def name(pos: int) -> tuple[str, int]:
        size, pos = leb(pos)
        return wasm[pos:pos + size].decode(), pos + size

    def limits(pos: int) -> int:
        flags, pos = leb(pos)
        if flags & ~0x07:  # max, shared, 64-bit: anything else (e.g. custom page sizes) is not read here
            raise ValueError(f"unknown limits flags {flags:#x} in the WebAssembly binary")
        _, pos = leb(pos)
        if flags & 1:
            _, pos = leb(pos)
        return pos

    def value_type(pos: int) -> int:
        if wasm[pos] not in _VALUE_TYPES:
            raise ValueError(f"unknown value type {wasm[pos]:#x} in the WebAssembly binary")
        return pos + 1

    pos = 8
    while pos < len(wasm):
        section, size_pos = wasm[pos], pos + 1
        size, pos = leb(size_pos)
        if section != 2:
            pos += size
            continue
        count, pos = leb(pos)
        out = []
        for _ in range(count):
            module, pos = name(pos)
            field, pos = name(pos)
            kind = wasm[pos]
            pos += 1
            if kind == 0:  # function: type index
                _, pos = leb(pos)
            elif kind == 1:  # table: element type, limits
                pos = limits(value_type(pos))
            elif kind == 2:  # memory: limits
                pos = limits(pos)
            elif kind == 3:  # global: value type, mutability
                pos = value_type(pos) + 1
            else:
                raise ValueError(f"unknown import kind {kind}")
            out.append((module, field))
        return out
    return []


def offline_bundle(bundle: str, wasm: bytes, earcut: str, wasm_version: str) -> str:
    """lonboard's bundle with the decoder and the worker inlined; ValueError naming what does not fit."""
    for pattern, what in ((_WASM_URL, "parquet-wasm URL"), (_EARCUT_URL, "earcut worker URL")):
        if len(pattern.findall(bundle)) != 1:
            raise ValueError(f"lonboard's bundle has no single {what} to replace")
    if bundle.count(_IMPORTS) != 1:
        raise ValueError("lonboard's bundle has no single parquet-wasm import object to extend")
    version = _VERSION.search(bundle)
    pair = (version.group(2) if version else "?", wasm_version)
    if pair not in VERIFIED:
        raise ValueError(f"lonboard's front end carries parquet-wasm {pair[0]}; its JavaScript with parquet-wasm "
                         f"{pair[1]}'s WebAssembly is not verified (verified: {sorted(VERIFIED)})")
    glue = bundle[bundle.index(_IMPORTS):][:200_000]  # the import object (~10 KB) and then some
    missing = []
    for module, field in wasm_imports(wasm):
        if module != "./parquet_wasm_bg.js":
            raise ValueError(f"the decoder imports {field!r} from {module!r}, which lonboard's bundle does not give")
        if re.search(rf"[{{,]\s*{re.escape(field)}\s*:", glue):
            continue
        # only a helper that the bundle has under another hash (the same function, another build)
        base = _HASH.sub("", field)
        if base == field or not re.search(rf"[{{,]\s*{re.escape(base)}_[0-9a-f]{{16}}\s*:", glue):
            raise ValueError(f"the decoder imports {field!r}, which lonboard's bundle lacks")
        missing.append(field)
    stubs = "".join(f'{field}:function(){{throw new Error("{field} is not in eolab\'s offline Parquet decoder")}},'
                    for field in missing)
    wasm_url = "data:application/wasm;base64," + base64.b64encode(wasm).decode()
    earcut_url = "data:text/javascript;base64," + base64.b64encode(earcut.encode()).decode()
    bundle = _WASM_URL.sub(lambda _: f'"{wasm_url}"', bundle)
    bundle = _EARCUT_URL.sub(lambda _: f'"{earcut_url}"', bundle)
    return bundle.replace(_IMPORTS, _IMPORTS + stubs)


@functools.cache
def _esm(folder: str) -> str | None:
    import lonboard

    root = Path(folder)
    missing = [str(root / f) for f in (WASM, WASM_PACKAGE, EARCUT) if not (root / f).is_file()]
    if missing:
        warnings.warn(f"the country map's front end will fetch its Parquet decoder from cdn.jsdelivr.net: "
                      f"{', '.join(missing)} missing (install them with "
                      f"`npm ci --prefix hub_config`, or set EOLAB_MAP_ASSETS_DIR)", RuntimeWarning, stacklevel=3)
        return None
    try:
        bundle = (Path(lonboard.__file__).parent / "static" / "index.js").read_text(encoding="utf-8")
        version = json.loads((root / WASM_PACKAGE).read_text(encoding="utf-8"))["version"]
        return offline_bundle(bundle, (root / WASM).read_bytes(), (root / EARCUT).read_text(encoding="utf-8"),
                              version)
    except (OSError, ValueError, KeyError) as err:
        warnings.warn(f"the country map's front end will fetch its Parquet decoder from cdn.jsdelivr.net: {err} "
                      f"(lonboard {lonboard.__version__})", RuntimeWarning, stacklevel=3)
        return None


def map_class():
    """lonboard's ``Map``, with its front end made offline where the files are there."""
    from lonboard import Map

    folder = assets_dir()
    if folder is None:
        _warn_once("the country map's front end will fetch its Parquet decoder from cdn.jsdelivr.net: no "
                   "hub_config/ to take it from (set EOLAB_MAP_ASSETS_DIR to a node_modules folder with "
                   "parquet-wasm and @geoarrow/geoarrow-js)")
        return Map
    esm = _esm(str(folder))
    if esm is None:
        return Map
    return _offline_class(esm)


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


@functools.cache
def _offline_class(esm: str):
    from lonboard import Map

    # anywidget takes a multi-line string as the module's text (a one-line one could pass for a path)
    return type("OfflineMap", (Map,), {"_esm": esm if "\n" in esm else esm + "\n", "__module__": __name__})
