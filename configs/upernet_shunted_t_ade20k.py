# UperNet, Shunted-T, ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images.
# The Shunted authors released no segmentation code and PVT v2 (whose code they followed) has no UperNet recipe.
# OUR CHOICE: the Swin UperNet recipe the paper compares against (AdamW 6e-5 / wd 0.01 with no decay on norms,
# poly with 1500-iteration warm-up, auxiliary FCN head on stage 3 at 0.4, stock ADE20K pipeline), and drop-path at
# the ImageNet rate of each size (T 0.1, S 0.2, B 0.3). No reference number is published for this exact code
# (third-party: Shunted-S + Semantic FPN 48.2 mIoU, RMT arXiv 2309.11523 Table 5).
_base_ = [
    './_base_/models/upernet_shunted.py',
    './_base_/datasets/ade20k_512.py',
    './_base_/seg_runtime.py',
    './_base_/schedules/upernet_adamw_160k.py',
]

# ImageNet-1k Shunted-T weights from the official release (Google Drive folder linked from
# https://github.com/OliverRensu/Shunted-Transformer), saved under this name.
# Elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch: model.backbone.init_cfg=None
pretrained = 'checkpoints/shunted_t.pth'

crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
