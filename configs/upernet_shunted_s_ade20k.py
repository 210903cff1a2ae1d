# UperNet, Shunted-S, ADE20K (recipe of upernet_shunted_t_ade20k.py -- our choice, see there).
_base_ = './upernet_shunted_t_ade20k.py'

# ImageNet-1k Shunted-S weights from the official release, saved under this name.
pretrained = 'checkpoints/shunted_s.pth'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
