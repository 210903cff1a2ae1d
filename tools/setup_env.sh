#!/usr/bin/env bash
# Create (or check) the project-local virtual environment `.venv` with the OpenMMLab stack.
#
# Idempotent: a second run verifies the imports and returns in seconds. mmcv 2.1.0 has only a source
# distribution on PyPI; it is compiled once per machine (about 11 minutes on 2 cores) and its wheel is kept in
# $MMSWIN_WHEEL_CACHE (default ~/.cache/mmswin/wheels), so a fresh venv on the same machine reuses it.
# torch is pinned by tools/constraints.txt for every install, so no other torch can be pulled in.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMSWIN_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CACHE="${MMSWIN_WHEEL_CACHE:-$HOME/.cache/mmswin/wheels}"
CONSTRAINTS="$ROOT/tools/constraints.txt"
MMCV_WHEEL_GLOB="mmcv-2.1.0-*.whl"

step() { echo "[setup_env] $*"; }
fail() { echo "[setup_env] FAILED at step: $*" >&2; exit 1; }
pip_install() {  # pip install under the torch pin, without the noise of this machine's pip config
  "$PY" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS" "$@" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  return "${PIPESTATUS[0]}"
}

# The stack is complete and mmswin is installed from this checkout.
check_env() {
  MMSWIN_ROOT="$ROOT" "$PY" - <<'PYEOF' >/dev/null 2>&1
import os
import torch, torchvision, mmengine, mmcv, mmdet, mmseg, timm, pycocotools, pytest, pkg_resources
import xdist, onnx, onnxscript, onnxruntime, flake8  # test workers; ONNX export (tools/deployment); lint
from mmcv.ops import nms, RoIAlign
assert torch.__version__.startswith('2.14.1'), torch.__version__
assert mmcv.__version__ == '2.1.0', mmcv.__version__
import mmswin
assert os.path.realpath(mmswin.__file__).startswith(os.path.realpath(os.environ['MMSWIN_ROOT']))
PYEOF
}

build_mmcv_wheel() {  # compile mmcv 2.1.0 with its ops into $CACHE
  local build
  build="$(mktemp -d)"
  # mmcv's setup.py imports pkg_resources, gone from setuptools >= 70: build with an old one, then restore.
  pip_install 'setuptools<70' ninja || fail "install build tools"
  "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$build" mmcv==2.1.0 \
    || fail "download mmcv sdist"
  tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build" || fail "unpack mmcv sdist"
  # torch 2.14's headers require C++20; mmcv 2.1.0 hard-codes C++14/17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$build"/mmcv-2.1.0/setup.py
  (cd "$build/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" FORCE_CUDA=0 \
      "$PY" -m pip wheel --no-build-isolation --no-deps -w "$build/dist" .) || fail "compile mmcv"
  mkdir -p "$CACHE"
  cp "$build"/dist/$MMCV_WHEEL_GLOB "$CACHE"/ || fail "cache mmcv wheel"
  rm -rf "$build"
}

main() {
  if [ -x "$PY" ] && check_env; then
    step "environment $VENV is complete"
    return 0
  fi
  local py_boot="${PYTHON:-python3.11}"
  command -v "$py_boot" >/dev/null 2>&1 || py_boot=python3
  step "creating virtual environment $VENV"
  [ -x "$PY" ] || "$py_boot" -m venv "$VENV" || fail "python -m venv"
  "$PY" -m pip install --disable-pip-version-check -q --upgrade pip wheel || fail "upgrade pip"

  step "installing torch 2.14.1 + torchvision 0.29.1 (about 1 minute)"
  pip_install torch==2.14.1 torchvision==0.29.1 || fail "install torch"

  local wheel
  wheel="$(ls "$CACHE"/$MMCV_WHEEL_GLOB 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    step "compiling mmcv 2.1.0 with ops (about 11 minutes on 2 cores; done once per machine)"
    build_mmcv_wheel
    wheel="$(ls "$CACHE"/$MMCV_WHEEL_GLOB | head -n1)"
  else
    step "reusing cached mmcv wheel $wheel"
  fi

  step "installing mmcv, mmdet, mmseg, timm and test tools"
  pip_install "$wheel" || fail "install mmcv wheel"
  pip_install -r "$ROOT/tools/requirements.txt" || fail "install requirements"
  # torch wants setuptools >= 77; mmengine 0.10.7 resolves `mmdet::` / `mmseg::` config bases with pkg_resources,
  # which setuptools 81 removed.
  pip_install 'setuptools>=77,<81' || fail "restore setuptools"
  pip_install --no-deps -e "$ROOT" || fail "install mmswin (editable)"

  check_env || { "$PY" -c "import mmswin, mmdet, mmseg, timm; from mmcv.ops import nms"; fail "import check"; }
  step "environment $VENV is ready"
}

# The whole file is parsed before main runs, so editing it during a run cannot derail that run.
main "$@"
