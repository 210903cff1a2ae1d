# RetinaNet + FPN, Swin-T, 1x on COCO 2017 (boxes only), as mmdet 3.x
# configs/swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py: stages 1-3 into the FPN (start_level=0, P6 / P7 on the last
# input), drop-path 0.2, single-scale 1333x800 training, and the optimizer that config keeps from mmdet's RetinaNet:
# SGD lr 0.01, momentum 0.9, weight decay 1e-4 (500-iteration warm-up; 12 epochs, steps 8 and 11); 8 GPUs x 2 images.
# No published number: neither mmdet 3.x (its metafile lists no Swin RetinaNet model) nor the official Swin
# release (no RetinaNet configs) reports one.
_base_ = [
    './_base_/models/retinanet_swin_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedules/retinanet_sgd_1x.py',
    './_base_/det_runtime.py',
]

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))
