# RetinaNet + FPN (stock mmdet model) with an mmswin Swin Transformer backbone (Swin-T sizes by default), wired as
# mmdet 3.x configs/swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py: the backbone returns stages 1-3 only (strides 8, 16,
# 32), the FPN starts at its first input (start_level=0) and adds P6 / P7 by strided convs on the last input
# (add_extra_convs='on_input', stock), 5 levels. Returning stage 0 too would build its output norm, which no FPN
# level uses: a parameter without gradient stops distributed training.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformer',
        arch='tiny',  # C=96, depths (2, 2, 6, 2), heads (3, 6, 12, 24)
        drop_path_rate=0.2,  # mmdet 3.x value
        out_indices=(1, 2, 3)),
    neck=dict(in_channels=[192, 384, 768], start_level=0, add_extra_convs='on_input', num_outs=5))
