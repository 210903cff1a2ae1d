# RetinaNet + FPN, Shunted-S, 1x on COCO 2017 (recipe of retinanet_shunted_t_fpn_1x_coco.py).
_base_ = './retinanet_shunted_t_fpn_1x_coco.py'

# ImageNet-1k Shunted-S weights from the official release, saved under this name.
pretrained = 'checkpoints/shunted_s.pth'

model = dict(backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
