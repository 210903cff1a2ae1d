# UperNet (stock mmseg model, as in upernet_swin.py) with an mmswin Shunted Transformer backbone.
_base_ = 'mmseg::_base_/models/upernet_swin.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.ShuntedTransformer',
        arch='tiny',
        in_channels=3,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.1,  # our choice: the ImageNet rate of each size (T 0.1, S 0.2, B 0.3)
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,  # our choice: stem BatchNorm statistics frozen at 2 images per GPU
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        with_cp=False),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
