# mmswin's runtime base: every mmswin config inherits it (through det_runtime.py / seg_runtime.py).
# `mmswin.models` registers the backbones; `mmswin.engine` registers the safeguard hooks and installs
# mmswin.engine.setup_runtime() (safe checkpoint loading, the atomic storage backend): see README, 'Architecture'.
# The checkpoint hook type (AtomicCheckpointHook) is set where each library keeps default_hooks: in the runtime
# for mmdet (det_runtime.py), in the schedule for mmseg (schedules/upernet_adamw_160k.py).
custom_imports = dict(imports=['mmswin.models', 'mmswin.engine'], allow_failed_imports=False)
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='DataCheckHook')]
