"""The engine is reachable without the UI: no source in localtune/ imports textual or tui, and
importing every engine and CLI module in a fresh interpreter never loads them (the one check of
this; the UI registers itself as an entry point that `localtune tui` loads)."""

import re
import subprocess
import sys
from pathlib import Path

import localtune

UI = ("textual", "tui")


def test_the_engine_never_imports_the_ui():
    pattern = re.compile(r"^\s*(from|import)\s+(tui|textual)\b", re.M)
    package = Path(localtune.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 50  # the scan sees the package
    bad = [str(p) for p in sources if pattern.search(p.read_text(encoding="utf-8"))]
    assert not bad, bad

    code = (
        "import importlib, pkgutil, sys, localtune\n"
        "names = [m.name for m in pkgutil.walk_packages(localtune.__path__, 'localtune.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {UI!r}]\n"
        "print(len(names), bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert int(out.stdout.split()[0]) > 50  # every module was imported, cli.tui_cmd included


def test_openblas_is_loaded_before_mlx_on_linux():
    code = (
        "import localtune, localtune._blas as b, sys\n"
        "print(b.loaded_path or b.reason)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if sys.platform.startswith("linux"):
        from localtune import _blas

        if any(__import__("os").path.exists(p) for p in _blas.CANDIDATES):
            assert "openblas" in out.stdout.lower()
