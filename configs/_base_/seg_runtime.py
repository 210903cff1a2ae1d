# mmseg's stock runtime + mmswin's safeguards (mmseg keeps default_hooks in its schedules: our schedule bases set
# the atomic checkpoint hook there).
_base_ = ['mmseg::_base_/default_runtime.py', './mmswin_runtime.py']

# The stock visualizer is named 'visualizer': mmengine keeps one instance per name and process, so a second run in
# the same process (the Python API, a notebook, a test) would write its scalars and pictures into the first run's
# log dir. Without a name, the runner names it after the experiment (config name + start time).
visualizer = dict(_delete_=True, type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
