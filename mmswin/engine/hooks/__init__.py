"""Hooks that keep a run from losing work or training on garbage, and the one that compiles the model; one file
each.

Registered in mmengine's root ``HOOKS`` registry, so configs of any scope (mmdet, mmseg) reach them by name once
``mmswin.engine`` is imported (``custom_imports``).
"""
from .checkpoint_hook import AtomicCheckpointHook, CheckpointSaveError
from .compile_hook import CompileHook, enable_compile
from .data_check_hook import DataCheckHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook

__all__ = ['AtomicCheckpointHook', 'CheckpointSaveError', 'CompileHook', 'DataCheckHook', 'NonFiniteLossError',
           'NonFiniteLossHook', 'enable_compile']
