# Mask R-CNN + FPN, Shunted-T, 1x on COCO 2017. The Shunted authors released no detection code; they followed
# the PVT v2 detection recipe: single-scale 1333x800 training, AdamW lr 2e-4 / weight decay 1e-4, drop-path 0.1,
# 12 epochs, 8 GPUs x 2 images. No reference number is published for this exact code.
_base_ = [
    './_base_/models/mask_rcnn_shunted_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './_base_/schedules/pvtv2_det_adamw_1x.py',
    './_base_/det_runtime.py',
]

# ImageNet-1k Shunted-T weights from the official release (Google Drive folder linked from
# https://github.com/OliverRensu/Shunted-Transformer), saved under this name.
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/shunted_t.pth'

model = dict(backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
