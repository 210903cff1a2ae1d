# UperNet, Swin-T, ADE20K: 512x512 crops, 160k iterations, 8 GPUs x 2 images (the Swin UperNet recipe:
# AdamW 6e-5 / wd 0.01, poly with 1500-iteration warm-up, drop-path 0.3, auxiliary FCN head on stage 3 at 0.4).
# Reference mIoU: 44.51 single scale / 45.81 multi-scale + flip (official); 44.41 / 45.79 (mmseg 1.x).
# Multi-scale + flip testing: python tools/test.py CONFIG CKPT --tta (ratios 0.5-1.75 with flip, stock tta_pipeline).
_base_ = [
    './_base_/models/upernet_swin.py',
    './_base_/datasets/ade20k_512.py',
    './_base_/seg_runtime.py',
    './_base_/schedules/upernet_adamw_160k.py',
]

# ImageNet-1k Swin-T weights in the official layout (converted on load). Get them with
#   mkdir -p checkpoints && wget -O checkpoints/swin_tiny_patch4_window7_224.pth \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'

crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
