"""The README's commands run as written: every tool it names answers ``--help``, every config it names loads, every
file of the checkout it names exists, every ``make`` target it names is in the Makefile."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from helpers import load_tool

REPO = Path(__file__).resolve().parents[1]
README = (REPO / 'README.md').read_text()
# a path inside the checkout: tools/..., configs/..., mmswin/..., tests/... (braces expanded, globs allowed)
PATH = re.compile(r'(?<![\w/.~-])((?:tools|configs|mmswin|tests)/[\w./{},*-]*[\w*}])')
PLACEHOLDERS = ('CONFIG', 'CKPT', 'CHECKPOINT')


def _expand(path: str) -> list[str]:
    match = re.search(r'\{([^{}]*)\}', path)
    if not match:
        return [path]
    return [p for alt in match.group(1).split(',') for p in _expand(path[:match.start()] + alt + path[match.end():])]


UPSTREAM = re.compile(r'mmdet|mmseg|Object-Detection|mmpretrain|timm')


def _ours(match: re.Match) -> bool:
    """Not a path of another repository the README cites (mmdetection's ``configs/swin/...``)."""
    top = '/'.join(match.group(1).split('/')[:2])
    window = README[max(0, match.start() - 60):match.end() + 12]
    return (REPO / top).exists() or '{' in top or not UPSTREAM.search(window)


def _named_paths() -> list[str]:
    return sorted({p for m in PATH.finditer(README) if _ours(m) for p in _expand(m.group(1))})


def _bash_lines() -> list[str]:
    """The README's shell commands: the lines of its ```bash blocks, continuation lines joined."""
    lines = []
    for block in re.findall(r'```bash\n(.*?)```', README, flags=re.S):
        lines += [line.split(' #')[0].strip() for line in block.replace('\\\n', ' ').splitlines()]
    return [line for line in lines if line and not line.startswith('#')]


def test_every_named_file_exists():
    paths = _named_paths()
    assert len(paths) > 40, paths  # the pattern still finds them
    missing = [p for p in paths if not any(REPO.glob(p.rstrip('/')))]
    assert not missing, f'README names files that are not in the checkout: {missing}'


def _python_tools() -> list[str]:
    return sorted({p for p in _named_paths() if p.startswith('tools/') and p.endswith('.py') and '*' not in p})


@pytest.mark.parametrize('tool', _python_tools())
def test_every_named_tool_answers_help(tool, capsys):
    module = load_tool(tool.removeprefix('tools/'))
    with pytest.raises(SystemExit) as info:
        module.main(['--help'])
    assert info.value.code == 0
    assert 'usage:' in capsys.readouterr().out


def test_shell_commands_call_existing_tools_and_python():
    commands = _bash_lines()
    assert any('tools/train.py' in c for c in commands)
    for command in commands:
        for word in shlex.split(command):
            if word.startswith('tools/') or word.startswith('configs/'):
                if not any(p in word for p in PLACEHOLDERS):
                    assert any(REPO.glob(word)), f'{command!r}: {word} does not exist'
        for match in re.finditer(r'(\S*)\bpython[\d.]*\b', command):
            assert match.group(1).endswith('.venv/bin/'), \
                f'{command!r}: run the tools with .venv/bin/python (the environment the set-up builds)'


def test_every_named_make_target_exists():
    makefile = (REPO / 'Makefile').read_text()
    targets = set(re.findall(r'^([\w-]+):', makefile, flags=re.M))
    named = set(re.findall(r'`make ([\w-]+)', README)) | {w.split()[1] for w in _bash_lines() if w.startswith('make ')}
    assert named and named <= targets, named - targets


@pytest.mark.parametrize('config', sorted({p for p in _named_paths() if p.startswith('configs/') and p.endswith('.py')
                                           and '*' not in p}))
def test_every_named_config_loads(config, tmp_path, monkeypatch):
    from mmswin.apis.config import load_config
    if config.startswith('configs/own_data/'):
        (tmp_path / 'meta.json').write_text(json.dumps({'classes': ['background', 'crack']}))
        monkeypatch.setenv('MMSWIN_DATA', str(tmp_path))
    cfg = load_config(str(REPO / config))
    assert cfg.default_scope in ('mmdet', 'mmseg')
