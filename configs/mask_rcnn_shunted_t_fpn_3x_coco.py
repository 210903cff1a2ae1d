# Mask R-CNN + FPN, Shunted-T, 3x on COCO 2017 with multi-scale + crop training.
# OUR CHOICE (no published recipe): the PVT v2 optimizer (AdamW lr 2e-4 / weight decay 1e-4, drop-path 0.1) with
# the 3x length (36 epochs, steps 27 / 33) and multi-scale + crop augmentation of the Swin 3x recipe.
_base_ = [
    './_base_/models/mask_rcnn_shunted_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/pvtv2_det_adamw_3x.py',
    './_base_/det_runtime.py',
]

# ImageNet-1k Shunted-T weights (see mask_rcnn_shunted_t_fpn_1x_coco.py).
pretrained = 'checkpoints/shunted_t.pth'

model = dict(backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
