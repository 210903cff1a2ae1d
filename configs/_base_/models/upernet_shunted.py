# UperNet (stock mmseg model, as in upernet_swin.py) with an mmswin Shunted Transformer backbone. The stem
# BatchNorm keeps its defaults: statistics frozen (norm_eval=True) -- our choice at 2 images per GPU.
_base_ = 'mmseg::_base_/models/upernet_swin.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.ShuntedTransformer',
        arch='tiny',
        drop_path_rate=0.1),  # our choice: the ImageNet rate of each size (T 0.1, S 0.2, B 0.3)
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
