"""The set-up's choice of mmcv build (CPU-only or CUDA ops), with the GPU and toolchain probes stubbed."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from helpers import TOOLS, load_tool

mmcv_build = load_tool('mmcv_build.py')
Machine = mmcv_build.Machine
H100 = (('NVIDIA H100 80GB HBM3', (9, 0)),)


def test_no_gpu_builds_cpu_ops():
    for machine in (Machine(torch_cuda=None), Machine(torch_cuda='13.0', gpus=())):
        plan = mmcv_build.plan(machine)
        assert (plan.build, plan.wheel_tag, plan.arch_list) == ('cpu', 'cpu', '')
        assert 'no GPU visible' in plan.reason


def test_gpu_with_matching_nvcc_builds_cuda_ops_for_its_arch():
    plan = mmcv_build.plan(Machine('13.0', H100, '/usr/local/cuda/bin/nvcc', '13.0'))
    assert (plan.build, plan.arch_list, plan.wheel_tag) == ('cuda', '9.0', 'cu130-sm90')
    assert plan.shell().splitlines() == ['MMCV_BUILD=cuda', 'MMCV_ARCH_LIST=9.0', 'MMCV_WHEEL_TAG=cu130-sm90']
    # a minor version apart is fine (torch's extension builder checks the major version)
    assert mmcv_build.plan(Machine('12.8', H100, '/opt/cuda/bin/nvcc', '12.4')).build == 'cuda'
    # two kinds of GPU: both archs, in one wheel
    mixed = H100 + (('NVIDIA A100', (8, 0)),)
    plan = mmcv_build.plan(Machine('13.0', mixed, 'nvcc', '13.0'))
    assert plan.arch_list == '8.0;9.0'
    shell = subprocess.run(['bash', '-c', 'eval "$0"; echo "$MMCV_ARCH_LIST|$MMCV_WHEEL_TAG"', plan.shell()],
                           capture_output=True, text=True)
    assert shell.stdout == '8.0;9.0|cu130-sm80_90\n', shell  # as the set-up's eval reads it
    # the user's TORCH_CUDA_ARCH_LIST wins and names the cached wheel
    plan = mmcv_build.plan(Machine('13.0', H100, 'nvcc', '13.0', arch_list_env='8.0;9.0+PTX'))
    assert (plan.arch_list, plan.wheel_tag) == ('8.0;9.0+PTX', 'cu130-sm80_90ptx')


def test_gpu_without_nvcc_stops_with_the_fix():
    with pytest.raises(mmcv_build.NoUsableBuild) as info:
        mmcv_build.plan(Machine('13.0', H100))
    msg = str(info.value)
    assert 'NVIDIA H100 80GB HBM3 (sm_90)' in msg and 'no CUDA compiler (nvcc)' in msg
    assert 'CUDA toolkit 13.0' in msg and 'CUDA_HOME' in msg and 'MMSWIN_MMCV_BUILD=cpu' in msg


def test_nvcc_of_another_major_version_stops():
    with pytest.raises(mmcv_build.NoUsableBuild, match=r'CUDA 12\.4, but torch was built with CUDA 13\.0'):
        mmcv_build.plan(Machine('13.0', H100, '/usr/local/cuda-12.4/bin/nvcc', '12.4'))


def test_forced_modes():
    plan = mmcv_build.plan(Machine('13.0', H100), mode='cpu')  # no nvcc needed
    assert plan.build == 'cpu' and 'cannot run on a GPU' in plan.reason
    with pytest.raises(mmcv_build.NoUsableBuild, match='sees no GPU'):
        mmcv_build.plan(Machine('13.0'), mode='cuda')
    with pytest.raises(mmcv_build.NoUsableBuild, match='not one of auto, cpu, cuda'):
        mmcv_build.plan(Machine(None), mode='gpu')


def test_main_prints_assignments_or_one_message(capsys):
    assert mmcv_build.main([], Machine('13.0', H100, 'nvcc', '13.0'), environ={}) == 0
    out, err = capsys.readouterr()
    assert 'MMCV_BUILD=cuda' in out and '[setup_env] mmcv build: GPU NVIDIA H100' in err
    assert mmcv_build.main([], Machine('13.0', H100), environ={}) == 1
    out, err = capsys.readouterr()
    assert out == '' and err.startswith('[setup_env] cannot build mmcv: a GPU is visible') and err.count('\n') == 1
    assert mmcv_build.main([], Machine('13.0', H100), environ={'MMSWIN_MMCV_BUILD': 'cpu'}) == 0
    assert 'MMCV_BUILD=cpu' in capsys.readouterr().out


def _fake_nvcc(folder, release: str) -> str:
    nvcc = folder / 'bin' / 'nvcc'
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.48"\n')
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return str(nvcc)


def test_toolchain_probe_reads_cuda_home_and_the_version(tmp_path):
    nvcc = _fake_nvcc(tmp_path / 'cuda', '13.0')
    assert mmcv_build.find_nvcc({'CUDA_HOME': str(tmp_path / 'cuda'), 'PATH': ''}) == nvcc
    assert mmcv_build.find_nvcc({'PATH': str(tmp_path / 'cuda' / 'bin')}) == nvcc
    assert mmcv_build.nvcc_version(nvcc) == '13.0'
    assert mmcv_build.nvcc_version(str(tmp_path / 'missing')) is None


def test_this_machine_as_the_set_up_runs_it():
    """The real probe, run as the set-up runs it: on a machine without a GPU, a CPU build."""
    import torch
    env = {k: v for k, v in os.environ.items() if k != 'MMSWIN_MMCV_BUILD'}
    proc = subprocess.run([sys.executable, str(TOOLS / 'mmcv_build.py')], capture_output=True, text=True, env=env)
    if torch.cuda.is_available():
        pytest.skip('a GPU machine: the CUDA plan is covered by the stubbed tests')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == 'MMCV_BUILD=cpu'
