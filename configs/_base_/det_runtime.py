# mmdet's stock runtime + mmswin's safeguards; checkpoints written atomically (interval etc. stay the stock ones).
_base_ = ['mmdet::_base_/default_runtime.py', './mmswin_runtime.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# Unnamed, so that each run in a process gets its own visualizer and log dir (see seg_runtime.py).
visualizer = dict(_delete_=True, type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
