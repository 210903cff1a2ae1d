# Mask R-CNN + FPN, Swin-T, 1x on COCO 2017: the mmdet 3.x recipe (single-scale 1333x800 training, drop-path 0.2,
# AdamW 1e-4 / wd 0.05, no decay on position tables and norms). Reference: 42.7 box AP / 39.3 mask AP
# (mmdetection configs/swin/metafile.yml). 8 GPUs x 2 images.
_base_ = [
    './_base_/models/mask_rcnn_swin_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './_base_/schedules/swin_det_adamw_1x.py',
    './_base_/det_runtime.py',
]

# ImageNet-1k Swin-T weights in the official layout (converted on load). Get them with
#   mkdir -p checkpoints && wget -O checkpoints/swin_tiny_patch4_window7_224.pth \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
