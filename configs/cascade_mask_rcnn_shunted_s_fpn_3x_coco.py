# Cascade Mask R-CNN + FPN, Shunted-S, 3x on COCO 2017 (recipe of cascade_mask_rcnn_shunted_t_fpn_3x_coco.py --
# our choice, see there).
_base_ = './cascade_mask_rcnn_shunted_t_fpn_3x_coco.py'

# ImageNet-1k Shunted-S weights from the official release, saved under this name.
pretrained = 'checkpoints/shunted_s.pth'

model = dict(backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
