# Cascade Mask R-CNN + FPN, Shunted-B, 3x on COCO 2017 (recipe of cascade_mask_rcnn_shunted_t_fpn_3x_coco.py --
# our choice, see there).
_base_ = './cascade_mask_rcnn_shunted_t_fpn_3x_coco.py'

# ImageNet-1k Shunted-B weights from the official release, saved under this name.
pretrained = 'checkpoints/shunted_b.pth'

model = dict(backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
