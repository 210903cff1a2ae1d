# UperNet, Shunted-B, ADE20K (recipe of upernet_shunted_t_ade20k.py -- our choice, see there).
_base_ = './upernet_shunted_t_ade20k.py'

# ImageNet-1k Shunted-B weights from the official release, saved under this name.
pretrained = 'checkpoints/shunted_b.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
