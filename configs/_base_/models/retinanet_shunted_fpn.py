# RetinaNet + FPN (stock mmdet model) with an mmswin Shunted Transformer backbone (Shunted-T by default; all sizes
# share the widths 64/128/256/512), wired as retinanet_swin_fpn.py: levels 1-3 out (strides 8, 16, 32), FPN from its
# first input, P6 / P7 on the last input, 5 levels -- the same network as PVT v2's RetinaNet (all four levels into an
# FPN with start_level=1). The stem BatchNorm keeps its statistics frozen (norm_eval=True), as in the Mask R-CNN base.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.ShuntedTransformer',
        arch='tiny',
        drop_path_rate=0.1,  # PVT v2 detection value
        out_indices=(1, 2, 3)),
    neck=dict(in_channels=[128, 256, 512], start_level=0, add_extra_convs='on_input', num_outs=5))
