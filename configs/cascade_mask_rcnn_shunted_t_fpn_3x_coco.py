# Cascade Mask R-CNN + FPN, Shunted-T, 3x on COCO 2017 with multi-scale + crop training.
# OUR CHOICE (the Shunted paper has no Cascade Mask R-CNN result and its authors released no detection code; they
# followed PVT v2's): PVT v2's Cascade Mask R-CNN 3x recipe (whai362/PVT detection/configs/
# cascade_mask_rcnn_pvt_v2_b2_fpn_3x_mstrain_fp16.py), which is the Swin cascade recipe -- GIoU 4conv1fc SyncBN box
# heads, multi-scale 480-800 + crop, AdamW lr 1e-4 / weight decay 0.05 with no decay on norms, 36 epochs (steps 27,
# 33), mixed precision (add --amp) -- with PVT v2's drop-path 0.1 and the 1000-iteration warm-up of our Swin schedule
# (PVT v2: 500). No reference number is published for this combination.
_base_ = [
    './_base_/models/cascade_mask_rcnn_shunted_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/swin_det_adamw_3x.py',
    './_base_/det_runtime.py',
]

# ImageNet-1k Shunted-T weights from the official release (Google Drive folder linked from
# https://github.com/OliverRensu/Shunted-Transformer), saved under this name.
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/shunted_t.pth'

model = dict(backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
