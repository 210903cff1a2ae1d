# mmdet's stock runtime + mmswin's safeguards; checkpoints written atomically (interval etc. stay the stock ones).
_base_ = ['mmdet::_base_/default_runtime.py', './mmswin_runtime.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
