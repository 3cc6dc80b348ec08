#!/usr/bin/env bash
# Set up everything nni-decouple needs in ./.venv, from nothing: Python venv, the pinned
# PyTorch/NNI/timm stack, mmcv 2.1.0 built from source with its C++ ops for the CPU (built once
# into a cache outside the repo and reused), OpenMMLab, and the package itself (editable).
# Safe to run again: every step is skipped when its result is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NNI_DECOUPLE_VENV:-$ROOT/.venv}"
CACHE="${NNI_DECOUPLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nni-decouple}"
PY_BIN="${PYTHON:-python3.11}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Headless Chromium (Debian's chromium package) opens `nni-decouple report` pages in the tests. A
# system package, so checked on every run (before the venv stamp); set NNI_DECOUPLE_NO_APT=1 to skip.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${NNI_DECOUPLE_NO_APT:-}" ]; then
  SUDO=()
  [ "$(id -u)" = 0 ] || SUDO=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    log "installing chromium (headless browser for the report test)"
    apt_install() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    apt_install || { "${SUDO[@]}" apt-get update -q >/dev/null && apt_install; }
  else
    log "chromium is missing and cannot be installed here (needs apt-get as root): install it for the report's browser test"
  fi
fi

command -v "$PY_BIN" >/dev/null 2>&1 || PY_BIN=python3
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment in $VENV"
  "$PY_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# timm's own model tests (tests/test_models.py of timm's sdist) run against every nd_* model in
# tests/models/test_timm_suite.py. Fetched once into the cache outside the repo (none of timm's files
# are committed); checked on every run, before the venv stamp, like chromium.
TIMM_VERSION="$(sed -n 's/^ *"timm==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)"
TIMM_TESTS="$CACHE/timm-$TIMM_VERSION/tests"
if [ ! -f "$TIMM_TESTS/test_models.py" ]; then
  log "fetching timm $TIMM_VERSION's source distribution for its model tests into $CACHE"
  mkdir -p "$CACHE/sdist"
  [ -f "$CACHE/sdist/timm-$TIMM_VERSION.tar.gz" ] \
    || "${PIP[@]}" download -q --no-deps --no-binary :all: "timm==$TIMM_VERSION" -d "$CACHE/sdist"
  UNPACK="$(mktemp -d)"
  tar -xzf "$CACHE/sdist/timm-$TIMM_VERSION.tar.gz" -C "$UNPACK" "timm-$TIMM_VERSION/tests/test_models.py"
  mkdir -p "$TIMM_TESTS"
  mv "$UNPACK/timm-$TIMM_VERSION/tests/test_models.py" "$TIMM_TESTS/test_models.py"
  rm -rf "$UNPACK"
fi

# Skip everything when this exact set-up (pyproject + this script) is already installed.
STAMP="$VENV/.nni-decouple-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

log "installing build tools and torch $TORCH_VERSION / torchvision $TORCHVISION_VERSION"
"${PIP[@]}" install -q --upgrade pip wheel 'setuptools<81' ninja
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# mmcv ships only as source on PyPI: build its wheel with ops once, cache it outside the repo.
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEELDIR="$CACHE/wheels/mmcv-$MMCV_VERSION-$PYTAG-torch$TORCH_VERSION-cpu"
if ! ls "$WHEELDIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  log "building mmcv $MMCV_VERSION with CPU ops (once; about 25 minutes on 2 cores)"
  BUILD="$(mktemp -d)"
  # torch 2.14 headers need C++20; mmcv's setup.py forces -std=c++17. The last -std flag wins.
  cat > "$BUILD/cxx20" <<'WRAP'
#!/usr/bin/env bash
exec g++ "$@" -std=c++20
WRAP
  chmod +x "$BUILD/cxx20"
  "${PIP[@]}" install -q 'setuptools<81' packaging addict yapf mmengine==0.10.7
  (cd "$BUILD" && CXX="$BUILD/cxx20" MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
    "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv "mmcv==$MMCV_VERSION" -w "$BUILD/out")
  # Strip debug info from the extension (32 MB -> ~1.4 MB) and repack.
  "${PIP[@]}" install -q wheel
  (cd "$BUILD/out" && "$PY" -m wheel unpack mmcv-*.whl -d unpacked \
     && find unpacked -name '_ext*.so' -exec strip --strip-debug {} + \
     && mkdir -p "$WHEELDIR" && "$PY" -m wheel pack unpacked/mmcv-* -d "$WHEELDIR")
  rm -rf "$BUILD"
fi

log "installing nni-decouple with all extras: mm, viz, enas (mmcv from $WHEELDIR)"
"${PIP[@]}" install -q --find-links "$WHEELDIR" -e "$ROOT[all,dev]"
echo "$WANT" > "$STAMP"
log "done: $VENV"
