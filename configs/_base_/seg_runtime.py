# mmseg's stock runtime + mmswin's safeguards (mmseg keeps default_hooks in its schedules: our schedule bases set
# the atomic checkpoint hook there).
_base_ = ['mmseg::_base_/default_runtime.py', './mmswin_runtime.py']
