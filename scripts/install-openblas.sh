#!/usr/bin/env bash
# Linux: install Debian/Ubuntu's OpenBLAS, which localtune loads before MLX (~30x faster f32 training
# on CPU than the reference BLAS bundled in the mlx[cpu] wheel). Never fails the install: without
# it, training still works, slowly, and we say what to do.
set -u
[ "$(uname -s)" = "Linux" ] || exit 0
for f in /usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0 /usr/lib/*-linux-gnu/libopenblas.so.0 /usr/lib64/libopenblas.so.0; do
  [ -e "$f" ] && { echo "OpenBLAS: $f"; exit 0; }
done
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = "0" ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"; }
  if [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; then
    echo "installing OpenBLAS (libopenblas0-pthread)..."
    if $SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1 \
       || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1; }; then
      echo "OpenBLAS installed"; exit 0
    fi
  fi
fi
cat <<'MSG'
NOTE: OpenBLAS is not installed and could not be installed automatically (needs root).
      Training works without it but ~30x slower on CPU. To fix, run:
        sudo apt-get install -y libopenblas0-pthread      (Debian/Ubuntu)
        sudo dnf install -y openblas                        (Fedora)
      or point LOCALTUNE_OPENBLAS at a libopenblas.so.0.
MSG
exit 0
