# UperNet, Swin-B pre-trained on ImageNet-22K (384x384, window 12), ADE20K at 640x640 crops, 160k iterations,
# 8 GPUs x 2 images: the Swin UperNet recipe (AdamW 6e-5 / wd 0.01, poly with 1500-iteration warm-up, drop-path 0.3,
# auxiliary FCN head on stage 3 at 0.4) with the 640 pipeline (resize scale 2560x640 x0.5-2.0, crop 640; test at
# 2560x640) and window 12, the window of the 22K weights (no bias-table resizing on load).
# Reference mIoU: 50.04 single scale / 51.66 multi-scale + flip (official, Swin-Transformer README and paper Table 3).
# Multi-scale + flip testing: python tools/test.py CONFIG CKPT --tta.
_base_ = [
    './_base_/models/upernet_swin.py',
    './_base_/datasets/ade20k_640.py',
    './_base_/seg_runtime.py',
    './_base_/schedules/upernet_adamw_160k.py',
]

# ImageNet-22K Swin-B weights at 384x384 (window 12) in the official layout. Get them with
#   mkdir -p checkpoints && wget -O checkpoints/swin_base_patch4_window12_384_22k.pth \
#     https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window12_384_22k.pth
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/swin_base_patch4_window12_384_22k.pth'

crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='base',
        pretrain_img_size=384,
        window_size=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
