"""The rooms of the package and what each may import (README, "Architecture"), checked on the source."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'mmswin'

# room -> modules it must never import (anywhere in the file, lazily included)
FORBIDDEN = {
    'models': ('mmdet', 'mmseg', 'mmswin.engine', 'mmswin.apis', 'mmswin.datasets'),
    'utils': ('mmdet', 'mmseg', 'mmswin.models', 'mmswin.engine', 'mmswin.apis', 'mmswin.datasets'),
    'datasets': ('mmdet', 'mmseg', 'torch', 'mmswin.models', 'mmswin.engine', 'mmswin.apis'),
    'engine': ('mmdet', 'mmseg', 'mmswin.models', 'mmswin.apis'),
    'apis': (),
}
# room -> modules it may import only inside functions (so that importing the room stays light)
LAZY_ONLY = {'apis': ('mmdet', 'mmseg')}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every import statement of a file; relative imports made absolute."""
    tree = ast.parse(path.read_text())
    package = '.'.join(path.relative_to(REPO).with_suffix('').parts[:-1])
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            found.append((module, id(node) in top))
    return found


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + '.')


@pytest.mark.parametrize('room', sorted(FORBIDDEN))
def test_import_rules(room):
    files = sorted((PACKAGE / room).rglob('*.py'))
    assert files, room
    broken = []
    for path in files:
        for module, at_top in _imports(path):
            if any(_matches(module, f) for f in FORBIDDEN[room]):
                broken.append(f'{path.relative_to(REPO)} imports {module}')
            if at_top and any(_matches(module, f) for f in LAZY_ONLY.get(room, ())):
                broken.append(f'{path.relative_to(REPO)} imports {module} at module level')
    assert not broken, '\n'.join(broken)


def test_importing_the_model_package_changes_nothing_else():
    """`import mmswin.models` registers the backbones only: torch's unpickler allow-list, mmengine's checkpoint
    loaders and file backends stay as they were until mmswin.engine.setup_runtime() runs."""
    code = '''
import torch
import mmcv.cnn, mmengine.model, mmengine.runner, timm  # their imports add torch classes of their own
from mmengine.fileio.backends import backends
from mmengine.runner.checkpoint import CheckpointLoader
safe = list(torch.serialization.get_safe_globals())
schemes = dict(CheckpointLoader._schemes)
known = set(backends)
import mmswin.models
assert list(torch.serialization.get_safe_globals()) == safe
assert dict(CheckpointLoader._schemes) == schemes
assert set(backends) == known
from mmswin.registry import MODELS
assert {'SwinTransformer', 'ShuntedTransformer'} <= set(MODELS.module_dict)
import mmswin.engine
assert len(torch.serialization.get_safe_globals()) > len(safe)
assert CheckpointLoader._schemes[''] is not schemes['']
assert 'mmswin_atomic_local' in backends
print('ok')
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-3000:]


def test_tools_are_scripts_over_the_package():
    """No tool patches ``sys.path`` or imports another tool: what tools share lives in ``mmswin`` (README,
    'Architecture')."""
    tools = sorted((REPO / 'tools').rglob('*.py'))
    assert len(tools) >= 10
    names = {p.stem for p in tools}
    broken = []
    for path in tools:
        text = path.read_text()
        if 'sys.path' in text:
            broken.append(f'{path.relative_to(REPO)} patches sys.path')
        broken += [f'{path.relative_to(REPO)} imports the tool {m}' for m, _ in _imports(path)
                   if m.split('.')[0] in names and not m.startswith(('mmswin', 'torch', 'mmengine'))]
        broken += [f'{path.relative_to(REPO)} reaches into tests/ ({text!r})' for text in _code_strings(path)
                   if text == 'tests' or text.startswith(('tests/', 'tests.'))]
    assert not broken, '\n'.join(broken)


def _code_strings(path: Path) -> list[str]:
    """The string constants of a file's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_tool_string_check_catches_a_path_into_tests(tmp_path):
    bad = tmp_path / 'tool.py'
    bad.write_text('"""Reads tests/ in its docstring only."""\nimport os\nPATH = os.path.join("x", "tests", "a.py")\n')
    assert 'tests' in _code_strings(bad) and not any(s.startswith('Reads') for s in _code_strings(bad))


def test_test_modules_stand_alone():
    """Test modules share code through tests/helpers.py (and conftest.py), never by importing one another: each
    runs on its own (`pytest tests/test_X.py`)."""
    modules = sorted((REPO / 'tests').glob('test_*.py'))
    names = {p.stem for p in modules}
    broken = [f'{path.name} imports {m}' for path in modules for m, _ in _imports(path) if m.split('.')[0] in names]
    assert not broken, '\n'.join(broken)


def test_the_tree_is_lint_clean():
    """ruff (ruff.toml: 120 columns, pycodestyle, pyflakes, bugbear) over the repository, as `make lint` runs it."""
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '.'], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
