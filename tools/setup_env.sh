#!/usr/bin/env bash
# Create (or check) the project-local virtual environment `.venv` with the OpenMMLab stack.
#
# Idempotent: a second run verifies the imports and returns in seconds. mmcv 2.1.0 has only a source
# distribution on PyPI; it is compiled once per machine and build kind (CPU-only: about 11 minutes on 2 cores; with
# CUDA ops for the visible GPU when a matching nvcc is found, see tools/mmcv_build.py) and its wheel is kept in
# $MMSWIN_WHEEL_CACHE/<kind> (default ~/.cache/mmswin/wheels/cpu or .../cu130-sm90), so a fresh venv on the same
# machine reuses it. MMSWIN_MMCV_BUILD=cpu forces a CPU-only build; TORCH_CUDA_ARCH_LIST picks the GPU archs.
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
import xdist, onnx, onnxscript, onnxruntime, ruff, torchao  # test workers; ONNX export (tools/deployment); lint; int8
from mmcv.ops import nms, RoIAlign
assert torch.__version__.startswith('2.14.1'), torch.__version__
assert mmcv.__version__ == '2.1.0', mmcv.__version__
if torch.cuda.is_available():  # a GPU machine needs mmcv's CUDA kernels (Mask R-CNN's RoIAlign, NMS)
    feats = torch.rand(1, 1, 8, 8, device='cuda')
    RoIAlign((2, 2), 1.0)(feats, torch.tensor([[0., 0., 0., 4., 4.]], device='cuda'))
import mmswin
assert os.path.realpath(mmswin.__file__).startswith(os.path.realpath(os.environ['MMSWIN_ROOT']))
PYEOF
}

build_mmcv_wheel() {  # compile mmcv 2.1.0 with its ops into $1 (CPU-only, or CUDA ops when MMCV_BUILD=cuda)
  local build dest="$1" force_cuda=0
  [ "$MMCV_BUILD" = cuda ] && force_cuda=1
  build="$(mktemp -d)"
  # mmcv's setup.py imports pkg_resources, gone from setuptools >= 70: build with an old one, then restore.
  pip_install 'setuptools<70' ninja || fail "install build tools"
  "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -d "$build" mmcv==2.1.0 \
    || fail "download mmcv sdist"
  tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build" || fail "unpack mmcv sdist"
  # torch 2.14's headers require C++20; mmcv 2.1.0 hard-codes C++14/17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$build"/mmcv-2.1.0/setup.py
  (cd "$build/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA=$force_cuda \
      TORCH_CUDA_ARCH_LIST="$MMCV_ARCH_LIST" "$PY" -m pip wheel --no-build-isolation --no-deps -w "$build/dist" .) \
    || fail "compile mmcv"
  mkdir -p "$dest"
  cp "$build"/dist/$MMCV_WHEEL_GLOB "$dest"/ || fail "cache mmcv wheel"
  rm -rf "$build"
}

main() {
  if [ -x "$PY" ] && check_env; then
    step "environment $VENV is complete"
    return 0
  fi
  local py_boot="${PYTHON:-python3.11}"
  if ! command -v "$py_boot" >/dev/null 2>&1; then
    py_boot=python3
    command -v "$py_boot" >/dev/null 2>&1 || fail "find Python: neither python3.11 nor python3 is on PATH"
    step "python3.11 not found; using $(command -v python3) ($("$py_boot" --version 2>&1)); PYTHON=... picks another"
  fi
  "$py_boot" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "Python >= 3.10 needed (3.11 tested), found $("$py_boot" --version 2>&1); set PYTHON=/path/to/python3.11"
  step "creating virtual environment $VENV"
  [ -x "$PY" ] || "$py_boot" -m venv "$VENV" || fail "python -m venv"
  "$PY" -m pip install --disable-pip-version-check -q --upgrade pip wheel || fail "upgrade pip"

  step "installing torch 2.14.1 + torchvision 0.29.1 (about 1 minute)"
  pip_install torch==2.14.1 torchvision==0.29.1 || fail "install torch"

  # CPU-only or CUDA ops: decided from torch's CUDA, the visible GPU and nvcc (exits with the fix when none fits)
  local plan wheel
  plan="$("$PY" "$ROOT/tools/mmcv_build.py")" || exit 1
  eval "$plan"
  local dest="$CACHE/$MMCV_WHEEL_TAG"
  if [ "$MMCV_WHEEL_TAG" = cpu ] && ls "$CACHE"/$MMCV_WHEEL_GLOB >/dev/null 2>&1; then
    mkdir -p "$dest" && mv "$CACHE"/$MMCV_WHEEL_GLOB "$dest"/  # the CPU wheel of earlier set-ups
  fi
  wheel="$(ls "$dest"/$MMCV_WHEEL_GLOB 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    if [ "$MMCV_BUILD" = cuda ]; then
      step "compiling mmcv 2.1.0 with CUDA ops for TORCH_CUDA_ARCH_LIST=$MMCV_ARCH_LIST (done once per machine;"
      step "  much longer than the CPU-only build: CUDA kernels for every op, MAX_JOBS=$(nproc) parallel jobs)"
    else
      step "compiling mmcv 2.1.0 with CPU ops (about 11 minutes on 2 cores; done once per machine)"
    fi
    build_mmcv_wheel "$dest"
    wheel="$(ls "$dest"/$MMCV_WHEEL_GLOB | head -n1)"
  else
    step "reusing cached mmcv wheel $wheel"
  fi

  step "installing mmcv, mmdet, mmseg, timm and test tools"
  # --force-reinstall: an environment holding the other kind of mmcv 2.1.0 (CPU-only on a GPU machine) is replaced
  pip_install --force-reinstall --no-deps "$wheel" || fail "install mmcv wheel"
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
