"""tools/analysis/gpu_report.py through its CPU dry run (tiny models), and benchmark_backbones.py's precisions."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from helpers import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'tools', 'analysis', 'gpu_report.py')
WORKLOADS = ('2 x 64 x 64', '1 x 64 x 96')
EAGER = ('train (ms)', 'eval (ms)', 'train peak (MiB)')
COMPILED = EAGER + ('first call, train (s)', 'first call, eval (s)')
COLUMNS = ['mmswin', 'timm', 'mmdet 3.3', 'official port']

# The GPU machine has torch, timm, numpy, mmengine and mmcv-lite only: the dry run must import nothing more.
WITHOUT_MM_EXTRAS = '''
import importlib.abc, runpy, sys

class Block(importlib.abc.MetaPathFinder):
    """No mmdet, no mmseg, no compiled mmcv ops, as with mmcv-lite."""
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmseg') or name.startswith(('mmcv.ops', 'mmcv._ext')):
            raise ModuleNotFoundError(f'No module named {name!r} (blocked by the test)', name=name)
        return None

sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _run(*argv: str, blocked: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable] + (['-c', WITHOUT_MM_EXTRAS] if blocked else []) + [SCRIPT, *argv]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=150)


def _table(stdout: str, first_cell: str) -> list[list[str]]:
    """The cells of the rows of the table whose header starts with ``| first_cell |``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f'| {first_cell} |'))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip().strip('|').split('|')])
    return rows


def _expected_keys(compiled: bool, workloads: tuple[str, ...] = WORKLOADS) -> list[tuple[str, ...]]:
    """(backbone, input, precision, compile, metric) of every row, in the table's order (the dry run compiles for
    the first workload only)."""
    keys = []
    for wl in workloads:
        keys += [('Swin-T', wl, 'bf16 autocast', 'eager', m) for m in EAGER]
        if compiled and wl == workloads[0]:
            keys += [('Swin-T', wl, 'bf16 autocast', 'compiled (eager backend)', m) for m in COMPILED]
    for wl in workloads:
        keys += [('Shunted-T', wl, 'fp32 + TF32', 'eager', m) for m in EAGER]
    return keys


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    """The whole dry run, compiled rows included, where mmdet, mmseg and mmcv's ops cannot be imported."""
    path = tmp_path_factory.mktemp('gpu_report') / 'report.json'
    out = _run('--dry-run', '--json', str(path), blocked=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, json.loads(path.read_text())


def test_dry_run_table_has_every_row_measured(dry_run):
    stdout, _ = dry_run
    header = next(line for line in stdout.splitlines() if line.startswith('| backbone |'))
    assert [c.strip() for c in header.strip('|').split('|')][5:] == COLUMNS + ['mmswin / best peer']
    rows = _table(stdout, 'backbone')
    assert [tuple(r[:5]) for r in rows] == _expected_keys(compiled=True)
    for row in rows:
        cells = dict(zip(COLUMNS, row[5:9]))
        swin = row[0] == 'Swin-T'
        peer = 'timm' if swin else 'official port'
        for column in ('mmswin', peer):
            value = float(cells[column])  # a number, not 'not measured'
            assert value >= 0 and (value > 0 or 'peak' in row[4]), row
        assert cells['mmdet 3.3'] == ('n/a' if swin else '-')
        assert cells['official port' if swin else 'timm'] == '-'
        assert row[9].endswith(f'x ({peer})') or ('peak' in row[4] and row[9] == '-'), row  # CPU RSS: often 0
    assert 'n/a: mmdet 3.3: mmdet not importable (ModuleNotFoundError' in stdout
    assert [line for line in stdout.splitlines() if line.startswith('not measured:')] == [
        'not measured: Swin-T 1 x 64 x 96 compiled: left out by --dry-run']


def test_dry_run_parity_checks_pass_tightly(dry_run):
    stdout, report = dry_run
    checks = _table(stdout, 'parity check (cpu)')
    assert [c[0].split(',')[0] for c in checks] == ['Swin-T', 'Swin-T', 'Shunted-T', 'Shunted-T']
    assert all(c[-1] == 'pass' for c in checks)
    assert 'all 4 parity checks passed' in stdout
    parity = report['parity']
    assert [p['passed'] for p in parity] == [True] * 4 and not report['failed']
    # on the CPU in float32 the implementations agree far below the tolerance: the comparison really ran
    assert parity[0]['relative'] < 1e-5 and parity[2]['relative'] < 1e-5
    assert parity[0]['tolerance'] == 1e-3 and 0 < parity[1]['relative'] < parity[1]['tolerance']


def test_dry_run_json_matches_the_table(dry_run):
    stdout, report = dry_run
    rows = report['rows']
    assert [(r['backbone'], f"{r['batch']} x {r['height']} x {r['width']}", r['precision'], r['compile'],
             r['metric']) for r in rows] == _expected_keys(compiled=True)
    assert len(report['not_measured']) == 1 and report['skipped_columns'].keys() == {'mmdet'}
    for r in rows:
        peers = {k: v for k, v in r['values'].items() if k != 'mmswin'}
        assert set(r['values']) == ({'mmswin', 'timm'} if r['backbone'] == 'Swin-T' else {'mmswin', 'official'})
        assert all(math.isfinite(v) for v in r['values'].values())
        best = min(peers, key=peers.get)
        if peers[best] > 0:
            assert r['best_peer'] == best and r['ratio'] == pytest.approx(r['values']['mmswin'] / peers[best])
        else:
            assert 'peak' in r['metric'] and r['ratio'] is None
    timed = [r for r in rows if '(ms)' in r['metric'] or r['metric'].startswith('first call')]
    assert len(timed) == 12 and all(min(r['values'].values()) > 0 for r in timed)


def _main_in_process(*argv: str) -> int:
    """gpu_report's main in this process (its exit status), torch's thread count restored after."""
    gpu_report = load_tool('analysis/gpu_report.py')
    threads = torch.get_num_threads()
    try:
        return gpu_report.main(list(argv))
    finally:
        torch.set_num_threads(threads)


def test_forced_parity_failure_exits_1_after_the_table(capsys):
    code = _main_in_process('--dry-run', '--parts', 'swin', '--no-mmdet', '--workloads', '2x64x64',
                            '--inject-parity-error')
    stdout = capsys.readouterr().out
    assert code == 1, stdout
    checks = _table(stdout, 'parity check (cpu)')
    assert checks[0][-1] == '**FAIL**' and checks[2][-1] == '**FAIL**'  # both float32 checks
    assert float(checks[0][2]) > 1e-2 and float(checks[2][2]) > 1e-2  # relative error
    assert 'PARITY FAILED: exit status 1' in stdout
    rows = _table(stdout, 'backbone')
    assert [tuple(r[:5]) for r in rows] == _expected_keys(compiled=False, workloads=WORKLOADS[:1])[:3]  # Swin-T
    assert all(float(r[5]) >= 0 for r in rows)  # measured all the same
    assert 'mmdet left out (--no-mmdet)' in stdout


def test_time_guard_lists_what_was_not_measured(capsys):
    code = _main_in_process('--dry-run', '--budget', '0', '--no-mmdet', '--workloads', '2x64x64')
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert 'all 4 parity checks passed' in stdout  # the checks run whatever the budget
    rows = _table(stdout, 'backbone')
    assert [tuple(r[:5]) for r in rows] == _expected_keys(compiled=True, workloads=('2 x 64 x 64',))
    for row in rows:
        assert row[5] == 'not measured' and row[-1] == 'not measured: time guard', row
    skipped = [line for line in stdout.splitlines() if line.startswith('not measured: ')]
    assert len(skipped) == 4 and all('time guard' in line for line in skipped)  # Swin, Swin train / eval, Shunted


def test_hard_limit_prints_the_table_and_exits(capsys, monkeypatch):
    """At the hard limit the timer thread prints what was measured and ends the process (``os._exit``, recorded
    here instead), with status 1 when the parity checks had not ended."""
    exits = []
    monkeypatch.setattr(os, '_exit', exits.append)
    _main_in_process('--dry-run', '--no-mmdet', '--hard-limit', '0', '--budget', '0', '--workloads', '2x64x64')
    stdout = capsys.readouterr().out
    assert exits == [1], stdout
    assert '--hard-limit of 0 s reached during' in stdout and 'PARITY NOT CHECKED' in stdout
    assert stdout.count('| backbone | input |') == 1  # printed once, by the timer
    rows = _table(stdout, 'backbone')
    assert rows and all(r[5] == 'not measured' and r[-1] == 'not measured: hard limit' for r in rows)


def test_benchmark_times_each_precision_interleaved(capsys, tmp_path, monkeypatch):
    bench = load_tool('analysis/benchmark_backbones.py')
    # the interleaving, whatever the CPU: bf16 runs (emulated, slowly) where the CPU lacks it, which the tool
    # would otherwise skip (tested below)
    monkeypatch.setattr(bench, 'amp_unsupported_reason', lambda device, amp: None)
    threads = torch.get_num_threads()
    try:
        code = bench.main(['--models', 'mmswin_swin_t', 'timm_swin_t', '--batch', '1', '--size', '64',
                           '--repeats', '1', '--warmup', '0', '--amp', 'fp32', 'bf16', '--no-memory', '--threads',
                           '1', '--json', str(tmp_path / 'b.json')])
    finally:
        torch.set_num_threads(threads)
    stdout = capsys.readouterr().out
    assert code == 0
    rows = _table(stdout, 'model')
    assert [r[:2] for r in rows] == [['mmswin_swin_t', 'fp32'], ['mmswin_swin_t', 'bf16'],
                                     ['timm_swin_t', 'fp32'], ['timm_swin_t', 'bf16']]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
    for amp in ('fp32', 'bf16'):
        for mode in ('train', 'eval'):
            assert f'mmswin_swin_t {mode}, {amp}: ' in stdout
    assert 'mmswin_swin_t bf16 / fp32 time: train ' in stdout and 'timm_swin_t bf16 / fp32 time: ' in stdout
    times = json.loads((tmp_path / 'b.json').read_text())['times']
    assert set(times) == {'fp32', 'bf16'} and times['bf16']['timm_swin_t']['eval'] > 0


def test_benchmark_skips_a_precision_the_cpu_lacks(capsys, monkeypatch):
    bench = load_tool('analysis/benchmark_backbones.py')
    monkeypatch.setattr(bench, 'amp_unsupported_reason', lambda device, amp: 'no bf16 here' if amp == 'bf16' else None)
    threads = torch.get_num_threads()
    try:
        assert bench.main(['--amp', 'bf16', '--models', 'mmswin_swin_t']) == 1  # nothing left: refused
        code = bench.main(['--models', 'mmswin_swin_t', '--batch', '1', '--size', '64', '--repeats', '1',
                           '--warmup', '0', '--amp', 'fp32', 'bf16', '--no-memory', '--modes', 'eval',
                           '--threads', '1'])
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    assert code == 0
    assert 'skipping bf16: no bf16 here' in captured.err and '# bf16 skipped: no bf16 here' in captured.out
    assert [r[:2] for r in _table(captured.out, 'model')] == [['mmswin_swin_t', 'fp32']]
    assert bench.amp_unsupported_reason('cpu', 'fp32') is None
