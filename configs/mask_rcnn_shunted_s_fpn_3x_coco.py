# Mask R-CNN + FPN, Shunted-S, 3x on COCO 2017 with multi-scale + crop training.
# OUR CHOICE (no published recipe): the PVT v2 optimizer (AdamW lr 2e-4 / weight decay 1e-4, drop-path 0.1) with
# the 3x length (36 epochs, steps 27 / 33) and multi-scale + crop augmentation of the Swin 3x recipe.
_base_ = [
    './_base_/models/mask_rcnn_shunted_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/pvtv2_det_adamw_3x.py',
    'mmdet::_base_/default_runtime.py',
]

# ImageNet-1k Shunted-S weights (see mask_rcnn_shunted_s_fpn_1x_coco.py).
pretrained = 'checkpoints/shunted_s.pth'

model = dict(backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# Checkpoints are written to a temporary file, then renamed (mmswin.engine); interval etc. stay the schedule's.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
