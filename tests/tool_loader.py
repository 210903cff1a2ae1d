"""Import a script of ``tools/`` as a module, once per process (the tools are scripts, not a package)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / 'tools'


def load_tool(path: str) -> ModuleType:
    """``tools/<path>`` under the name ``mmswin_tool_<path with / and . as _>`` (``tools/test.py`` as plain ``test``
    would clash with the standard library's)."""
    name = 'mmswin_tool_' + path.removesuffix('.py').replace('/', '_').replace('.', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOLS / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]
