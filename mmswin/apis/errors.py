"""User errors end a tool with their message and exit code 1, not a traceback: :func:`run_tool`.

A *user error* is a known mistake in what the user gave -- data, config, checkpoint -- whose message already says
what was wrong and what to do (the classes in :func:`user_error_types`), or a library error with a known user
cause, explained here (a label value above ``num_classes``). Anything else is a bug and keeps its traceback.
``--debug`` on the command line (or ``MMSWIN_DEBUG=1``) shows the traceback of user errors too.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ['ConfigError', 'ToolError', 'user_error_types', 'add_debug_argument', 'run_tool']

DEBUG_HELP = ('show the traceback of a user error (a known mistake otherwise ends with one message and exit status '
              '1); MMSWIN_DEBUG=1 does the same')


class ConfigError(ValueError):
    """The config or a ``--cfg-options`` entry is wrong (a key that does not exist, a value of the wrong kind)."""


class ToolError(Exception):
    """A mistake in a tool's command line or inputs (a file that is not there, an option the config cannot
    serve); the message says what was wrong and what to do."""


def add_debug_argument(parser: Any) -> None:
    """Document ``--debug`` in an ``argparse`` parser's ``--help`` (:func:`run_tool` takes it out of ``argv``)."""
    parser.add_argument('--debug', action='store_true', help=DEBUG_HELP)


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception classes whose message is the whole story (imported lazily: tools start fast)."""
    from mmswin.datasets.checks import DataCheckError
    from mmswin.datasets.labelme import ConversionError
    from mmswin.engine.hooks import CheckpointSaveError, NonFiniteLossError
    from mmswin.engine.precision import UnsupportedPrecisionError
    from mmswin.models.pretrained import CheckpointMismatchError
    from mmswin.utils.checkpoint_io import CheckpointFileError, UnsafeCheckpointError
    return (ConfigError, ToolError, DataCheckError, ConversionError, NonFiniteLossError, CheckpointSaveError,
            CheckpointMismatchError, CheckpointFileError, UnsafeCheckpointError, UnsupportedPrecisionError)


def _explain(err: BaseException) -> str | None:
    """A user-readable message for errors that surface deep in a library but have a known user cause."""
    match = re.search(r'Target (-?\d+) is out of bounds', str(err)) if isinstance(err, IndexError) else None
    if match:
        return (f'a label map holds the class index {match.group(1)}, outside the model\'s classes (0 .. '
                'num_classes - 1) and the ignore index 255. Check num_classes in the config (decode_head / '
                'auxiliary_head / bbox_head) against the data set, or the label maps themselves; '
                "custom_hooks=[dict(type='DataCheckHook', level='decode')] names the file before training starts.")
    return None


def run_tool(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None,
             extra_errors: tuple[type[BaseException], ...] = (), prog: str | None = None) -> int:
    """Run a tool's ``main(argv)``; a user error prints ``<tool>: error: <message>`` and returns 1.

    ``--debug`` is taken out of ``argv`` (``sys.argv[1:]`` when None) and re-raises user errors with their
    traceback. Returns ``main``'s own status when it returns an int (e.g. 1 for a failed verification), else 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv or os.environ.get('MMSWIN_DEBUG', '') not in ('', '0')
    argv = [a for a in argv if a != '--debug']
    prog = prog or os.path.splitext(os.path.basename(sys.argv[0]))[0] or 'mmswin'
    try:
        status = main(argv)
    except user_error_types() + tuple(extra_errors) + (IndexError,) as err:
        message = str(err) if not isinstance(err, IndexError) else _explain(err)
        if debug or message is None:
            raise
        print(f'{prog}: error: {message}\n(run with --debug for the traceback)', file=sys.stderr)
        return 1
    return status if isinstance(status, int) and not isinstance(status, bool) else 0
