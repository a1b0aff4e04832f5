"""lonboard's front end made offline: the Parquet decoder's WebAssembly and the triangulation worker
inlined as data: URLs, stubs for the decoder's imports its JavaScript half lacks, and lonboard's own
bundle (with a warning) where the files or the text to replace are missing. That the map then draws
in a browser without leaving the machine: tests/e2e/test_country_map_browser.py."""

from __future__ import annotations

import base64
import re

import pytest

pytest.importorskip("lonboard")

from eolab.widgets import _lonboard_offline as off  # noqa: E402


def _name(text: str) -> bytes:
    return bytes([len(text)]) + text.encode()


def _wasm(imports: list[tuple[str, str, bytes]]) -> bytes:
    """A WebAssembly binary with a type section and the given imports (kind byte + description)."""
    types = b"\x01" + b"\x60\x00\x00"  # one type: () -> ()
    body = bytes([len(imports)]) + b"".join(_name(m) + _name(f) + d for m, f, d in imports)
    return (b"\0asm\x01\0\0\0" + b"\x01" + bytes([len(types)]) + types
            + b"\x02" + bytes([len(body)]) + body)


def test_wasm_imports_reads_every_kind():
    wasm = _wasm([("./m.js", "__wbg_f_1", b"\x00\x00"), ("env", "memory", b"\x02\x01\x01\x02"),
                  ("env", "table", b"\x01\x70\x00\x01"), ("env", "g", b"\x03\x7f\x00"), ("./m.js", "__wbg_h_2", b"\x00\x00")])
    assert off.wasm_imports(wasm) == [("./m.js", "__wbg_f_1"), ("env", "memory"), ("env", "table"), ("env", "g"),
                                      ("./m.js", "__wbg_h_2")]
    assert off.wasm_imports(b"\0asm\x01\0\0\0") == []
    with pytest.raises(ValueError, match="not a WebAssembly binary"):
        off.wasm_imports(b"PAR1")
    # what it cannot read is refused, never misread: a typed reference, custom page sizes, a cut file
    with pytest.raises(ValueError, match="value type 0x63"):
        off.wasm_imports(_wasm([("env", "g", b"\x03\x63\x70\x00")]))
    with pytest.raises(ValueError, match="limits flags 0x8"):
        off.wasm_imports(_wasm([("env", "memory", b"\x02\x08\x01\x10")]))
    with pytest.raises(ValueError, match="truncated"):
        off.wasm_imports(wasm[:-3])


BUNDLE = ('var v="0.9.0",u=`https://cdn.jsdelivr.net/npm/parquet-wasm@${v}/esm/parquet_wasm_bg.wasm`;\n'
          'function X(){return{__proto__:null,"./parquet_wasm_bg.js":{__proto__:null,'
          '__wbg_have_0123456789abcdef:function(e){return e},__wbg_fetch_1111111111111111:function(){}}}}\n'
          'var A={earcutWorkerUrl:"https://cdn.jsdelivr.net/npm/@geoarrow/geoarrow-js@0.3.0/dist/earcut-worker.min.js"};\n')


def _data_url(esm: str, start: str) -> bytes:
    found = re.findall(rf'"data:{re.escape(start)};base64,([A-Za-z0-9+/=]+)"', esm)
    assert len(found) == 1
    return base64.b64decode(found[0])


def test_offline_bundle_inlines_both_files_and_stubs_only_missing_imports():
    wasm = _wasm([("./parquet_wasm_bg.js", "__wbg_have_0123456789abcdef", b"\x00\x00"),
                  ("./parquet_wasm_bg.js", "__wbg_fetch_2222222222222222", b"\x00\x00")])
    esm = off.offline_bundle(BUNDLE, wasm, "self.onmessage=()=>{}", "0.8.0")
    assert "cdn.jsdelivr.net" not in esm
    assert _data_url(esm, "application/wasm") == wasm
    assert _data_url(esm, "text/javascript") == b"self.onmessage=()=>{}"
    # the helper the JavaScript half has under another hash gets a stub that names itself; the one
    # it has is left alone
    stub = '__wbg_fetch_2222222222222222:function(){throw new Error("__wbg_fetch_2222222222222222 is not in'
    assert esm.count(stub) == 1
    assert esm.count("__wbg_have_0123456789abcdef:") == 1 and "__wbg_fetch_1111111111111111:function(){}" in esm


@pytest.mark.parametrize("imports, version, what", [
    ([("./parquet_wasm_bg.js", "__wbg_unheard_of_3333333333333333")], "0.8.0", "lacks"),
    ([("./parquet_wasm_bg.js", "__wbindgen_new_thing")], "0.8.0", "lacks"),
    ([("./other.js", "__wbg_have_0123456789abcdef")], "0.8.0", "from './other.js'"),
    ([], "0.7.1", "not verified"),
])
def test_a_decoder_that_does_not_fit_is_refused(imports, version, what):
    wasm = _wasm([(m, f, b"\x00\x00") for m, f in imports])
    with pytest.raises(ValueError, match=what):
        off.offline_bundle(BUNDLE, wasm, "", version)


@pytest.mark.parametrize("cut, what", [("`https://cdn.jsdelivr.net/npm/parquet-wasm@${v}/esm/parquet_wasm_bg.wasm`",
                                        "parquet-wasm URL"),
                                       ('"./parquet_wasm_bg.js":{__proto__:null,', "import object")])
def test_offline_bundle_names_what_it_cannot_find(cut, what):
    with pytest.raises(ValueError, match=what):
        off.offline_bundle(BUNDLE.replace(cut, '"x"'), _wasm([]), "", "0.8.0")
    with pytest.raises(ValueError, match="no single"):
        off.offline_bundle(BUNDLE + BUNDLE, _wasm([]), "", "0.8.0")


def test_without_the_files_the_map_is_lonboards_own_with_a_warning(tmp_path, monkeypatch):
    from lonboard import Map

    monkeypatch.setenv("EOLAB_MAP_ASSETS_DIR", str(tmp_path / "none"))
    with pytest.warns(RuntimeWarning, match="cdn.jsdelivr.net.*npm ci --prefix hub_config"):
        assert off.map_class() is Map


def test_the_warning_names_each_missing_file(tmp_path, monkeypatch):
    from lonboard import Map

    for name in (off.WASM, off.EARCUT):  # the decoder's package.json (its version) is not there
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv("EOLAB_MAP_ASSETS_DIR", str(tmp_path))
    with pytest.warns(RuntimeWarning) as caught:
        assert off.map_class() is Map
    message = str(caught[0].message)
    assert str(tmp_path / off.WASM_PACKAGE) in message
    assert str(tmp_path / off.WASM) not in message and str(tmp_path / off.EARCUT) not in message


def test_an_unknown_bundle_keeps_lonboards_own_with_a_warning(tmp_path, monkeypatch):
    from lonboard import Map

    (tmp_path / off.WASM).parent.mkdir(parents=True)
    (tmp_path / off.WASM).write_bytes(_wasm([]))
    (tmp_path / off.EARCUT).parent.mkdir(parents=True)
    (tmp_path / off.EARCUT).write_text("")
    (tmp_path / off.WASM_PACKAGE).write_text('{"version": "0.8.0"}')
    monkeypatch.setenv("EOLAB_MAP_ASSETS_DIR", str(tmp_path))
    monkeypatch.setattr(off, "offline_bundle", lambda *a: (_ for _ in ()).throw(ValueError("no single thing")))
    with pytest.warns(RuntimeWarning, match="no single thing"):
        assert off.map_class() is Map
    # a package.json without a version: a warning too, not an error in CountryMap
    (tmp_path / off.WASM_PACKAGE).write_text("{}")
    off._esm.cache_clear()
    with pytest.warns(RuntimeWarning, match="cdn.jsdelivr.net"):
        assert off.map_class() is Map


def test_without_a_checkout_the_map_warns_that_it_uses_the_cdn(monkeypatch):
    from lonboard import Map

    monkeypatch.setattr(off, "assets_dir", lambda: None)
    off._warn_once.cache_clear()
    with pytest.warns(RuntimeWarning, match="no hub_config/.*EOLAB_MAP_ASSETS_DIR"):
        assert off.map_class() is Map


def test_installed_files_make_lonboards_bundle_offline(monkeypatch):
    """The files `make install` brings (hub_config/node_modules) against the installed lonboard."""
    monkeypatch.delenv("EOLAB_MAP_ASSETS_DIR", raising=False)
    folder = off.assets_dir()
    if folder is None or not (folder / off.WASM).is_file():
        pytest.skip("hub_config/node_modules has no parquet-wasm: run `make install`")
    cls = off.map_class()
    esm = str(cls._esm)
    assert cls.__name__ == "OfflineMap" and "cdn.jsdelivr.net" not in esm
    assert _data_url(esm, "application/wasm") == (folder / off.WASM).read_bytes()
    # every import of the decoder is provided by the bundle's JavaScript or a stub
    glue = esm[esm.index(off._IMPORTS):]
    for module, field in off.wasm_imports((folder / off.WASM).read_bytes()):
        assert module == "./parquet_wasm_bg.js" and re.search(rf"[{{,]{re.escape(field)}:", glue[:300_000]), field
    m = cls(layers=[])
    assert m._esm == esm  # what the browser gets
