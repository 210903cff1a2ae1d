"""Decide how ``tools/setup_env.sh`` builds mmcv 2.1.0: with its CUDA ops for the visible GPU, or CPU-only.

mmcv 2.1.0 has no wheel for torch 2.14 on PyPI, so the set-up compiles it. A CPU-only build on a GPU machine would
leave RoIAlign / NMS without CUDA kernels (Mask R-CNN could not train on the GPU), so the decision follows the
machine:

* no GPU visible to torch (or ``MMSWIN_MMCV_BUILD=cpu``): a CPU-only build;
* a GPU and a CUDA compiler whose major version matches torch's CUDA: a CUDA build for the visible GPUs'
  architectures (``TORCH_CUDA_ARCH_LIST`` when set);
* a GPU without such a compiler: stop with what is missing and how to get it, or how to force a CPU-only build.

Run by the set-up with the new environment's Python (torch installed, nothing else needed)::

    python tools/mmcv_build.py      # prints shell assignments MMCV_BUILD=..., MMCV_ARCH_LIST=..., MMCV_WHEEL_TAG=...

Exit status 1 with one message when no usable build exists. The probes are plain functions, so tests can stub them.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

MODES = ('auto', 'cpu', 'cuda')


@dataclass(frozen=True)
class Machine:
    """What the set-up sees: torch's CUDA build, the visible GPUs and the CUDA compiler."""
    torch_cuda: str | None  # torch.version.cuda, e.g. '13.0'; None for a CPU-only torch
    gpus: tuple[tuple[str, tuple[int, int]], ...] = ()  # (name, compute capability) of each visible GPU
    nvcc: str | None = None  # path of the CUDA compiler found
    nvcc_version: str | None = None  # e.g. '13.0'
    arch_list_env: str | None = None  # TORCH_CUDA_ARCH_LIST as set by the user


@dataclass(frozen=True)
class BuildPlan:
    build: str  # 'cpu' or 'cuda'
    reason: str
    arch_list: str = ''  # TORCH_CUDA_ARCH_LIST for a CUDA build, e.g. '9.0'
    wheel_tag: str = 'cpu'  # names the cache folder of the wheel, e.g. 'cu130-sm90'

    def shell(self) -> str:
        """``NAME=value`` lines for the set-up's ``eval`` (values quoted: an arch list holds ``;``)."""
        values = {'MMCV_BUILD': self.build, 'MMCV_ARCH_LIST': self.arch_list, 'MMCV_WHEEL_TAG': self.wheel_tag}
        return '\n'.join(f'{name}={shlex.quote(value)}' for name, value in values.items())


class NoUsableBuild(Exception):
    """A GPU is visible but no CUDA build of mmcv can be made here; the message says what to do."""


def _major(version: str | None) -> str | None:
    return version.split('.')[0] if version else None


def plan(machine: Machine, mode: str = 'auto') -> BuildPlan:
    """The build for ``machine``; ``mode`` is ``MMSWIN_MMCV_BUILD`` (auto, cpu, cuda). Raises ``NoUsableBuild``."""
    if mode not in MODES:
        raise NoUsableBuild(f'MMSWIN_MMCV_BUILD={mode!r} is not one of {", ".join(MODES)}')
    if mode == 'cpu':
        return BuildPlan('cpu', 'MMSWIN_MMCV_BUILD=cpu: CPU-only mmcv ops (detectors cannot run on a GPU)')
    gpus = ', '.join(f'{name} (sm_{a}{b})' for name, (a, b) in machine.gpus)
    if not machine.gpus or machine.torch_cuda is None:
        if mode == 'cuda':
            seen = f'torch {"has no CUDA build" if machine.torch_cuda is None else "sees no GPU"}'
            raise NoUsableBuild(f'MMSWIN_MMCV_BUILD=cuda, but {seen}: a CUDA build of mmcv needs a GPU visible '
                                'to torch (check nvidia-smi and CUDA_VISIBLE_DEVICES), or unset it for a CPU build')
        return BuildPlan('cpu', 'no GPU visible to torch: CPU-only mmcv ops')
    fix_cpu = 'or build CPU-only ops with MMSWIN_MMCV_BUILD=cpu (detectors then run on the CPU only)'
    if machine.nvcc is None:
        raise NoUsableBuild(
            f'a GPU is visible ({gpus}) but no CUDA compiler (nvcc) was found, so mmcv cannot be built with its '
            f'CUDA ops (RoIAlign, NMS) for it. Install the CUDA toolkit {machine.torch_cuda} (the version torch '
            f'was built with; e.g. `conda install -c nvidia cuda-toolkit={machine.torch_cuda}` or NVIDIA\'s '
            f'installer), put its bin/ on PATH or set CUDA_HOME, and run the set-up again; {fix_cpu}')
    if _major(machine.nvcc_version) != _major(machine.torch_cuda):
        raise NoUsableBuild(
            f'the CUDA compiler {machine.nvcc} is CUDA {machine.nvcc_version or "of unknown version"}, but torch '
            f'was built with CUDA {machine.torch_cuda}: the major versions must match to build mmcv\'s CUDA ops. '
            f'Point CUDA_HOME at a CUDA {machine.torch_cuda} toolkit and run the set-up again; {fix_cpu}')
    archs = machine.arch_list_env or ';'.join(sorted({f'{a}.{b}' for _, (a, b) in machine.gpus}))
    tag = 'cu{}-sm{}'.format(machine.torch_cuda.replace('.', ''),
                             '_'.join(a.replace('.', '').replace('+PTX', 'ptx') for a in re.split(r'[;\s]+', archs)
                                      if a))
    return BuildPlan('cuda', f'GPU {gpus}, nvcc {machine.nvcc_version} ({machine.nvcc}): mmcv with CUDA ops for '
                             f'TORCH_CUDA_ARCH_LIST={archs}', arch_list=archs, wheel_tag=tag)


# ------------------------------------------------------------------------------------------------------ probes


def find_nvcc(environ: dict) -> str | None:
    """``$CUDA_HOME/bin/nvcc`` (or ``CUDA_PATH``), else ``nvcc`` on PATH, else the usual /usr/local/cuda."""
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        if environ.get(var) and os.path.isfile(os.path.join(environ[var], 'bin', 'nvcc')):
            return os.path.join(environ[var], 'bin', 'nvcc')
    found = shutil.which('nvcc', path=environ.get('PATH'))
    if found:
        return found
    return '/usr/local/cuda/bin/nvcc' if os.path.isfile('/usr/local/cuda/bin/nvcc') else None


def nvcc_version(nvcc: str) -> str | None:
    """'13.0' from ``nvcc --version`` ('Cuda compilation tools, release 13.0, V13.0.48')."""
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+\.\d+)', out)
    return match.group(1) if match else None


def probe(environ: dict | None = None) -> Machine:
    """The machine as torch and the file system show it."""
    import torch
    environ = dict(os.environ if environ is None else environ)
    gpus = ()
    if torch.version.cuda and torch.cuda.is_available():
        gpus = tuple((torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
                     for i in range(torch.cuda.device_count()))
    nvcc = find_nvcc(environ) if gpus else None
    return Machine(torch.version.cuda, gpus, nvcc, nvcc_version(nvcc) if nvcc else None,
                   environ.get('TORCH_CUDA_ARCH_LIST') or None)


def main(argv: list[str] | None = None, machine: Machine | None = None, environ: dict | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog='MMSWIN_MMCV_BUILD=auto|cpu|cuda '
                                     'overrides the choice; TORCH_CUDA_ARCH_LIST the GPU architectures.')
    parser.parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    try:
        result = plan(machine or probe(environ), environ.get('MMSWIN_MMCV_BUILD', 'auto') or 'auto')
    except NoUsableBuild as exc:
        print(f'[setup_env] cannot build mmcv: {exc}', file=sys.stderr)
        return 1
    print(f'[setup_env] mmcv build: {result.reason}', file=sys.stderr)
    print(result.shell())
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
