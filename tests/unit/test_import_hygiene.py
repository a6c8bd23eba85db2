"""The engine is reachable without the UI: importing it never imports textual."""

import subprocess
import sys

ENGINE_MODULES = [
    "localtune", "localtune.backend", "localtune.lora", "localtune.config", "localtune.runs",
    "localtune.chat", "localtune.train.session", "localtune.train.sft", "localtune.data",
    "localtune.models", "localtune.cli",
]


def test_engine_does_not_import_textual():
    code = "import sys\n" + "".join(f"import {m}\n" for m in ENGINE_MODULES) + (
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'tui'))]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


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
