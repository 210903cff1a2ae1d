# RetinaNet + FPN, Shunted-T, 1x on COCO 2017 (boxes only). The Shunted authors released no detection code; they
# followed the PVT v2 detection recipe, here its RetinaNet 1x (whai362/PVT detection/configs/
# retinanet_pvt_v2_b*_fpn_1x_coco.py): AdamW lr 1e-4 / weight decay 1e-4 on every parameter, 500-iteration
# warm-up, 12 epochs (steps 8, 11), single-scale 1333x800 training, drop-path 0.1, 8 GPUs x 2 images.
# Backbone levels 1-3 into the FPN (retinanet_shunted_fpn.py: the same network as PVT v2's wiring) -- our choice.
# No reference number is published for this exact code.
_base_ = [
    './_base_/models/retinanet_shunted_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedules/pvtv2_retinanet_adamw_1x.py',
    './_base_/det_runtime.py',
]

# ImageNet-1k Shunted-T weights from the official release (Google Drive folder linked from
# https://github.com/OliverRensu/Shunted-Transformer), saved under this name.
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/shunted_t.pth'

model = dict(backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
