# PVT v2 Mask R-CNN recipe, 1x (whai362/PVT detection/configs/mask_rcnn_pvt_v2_*_fpn_1x_coco.py), which the
# Shunted authors say they followed (Shunted-Transformer issue 17): AdamW lr 2e-4, weight decay 1e-4 on every
# parameter (no paramwise rules), mmdet's stock 1x schedule: 500-iteration linear warm-up from 0.001x,
# 12 epochs, lr x0.1 at 8 and 11; batch 16 (8 GPUs x 2).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.0001))
