# UperNet (stock mmseg model: UPerHead pool scales (1, 2, 3, 6), 512 channels, SyncBN; auxiliary FCNHead on
# stage index 2 with loss weight 0.4) with an mmswin Swin Transformer backbone (Swin-T sizes by default; every
# other backbone argument keeps its default, see SwinTransformer's docstring).
_base_ = 'mmseg::_base_/models/upernet_swin.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformer',
        arch='tiny',
        drop_path_rate=0.3),  # Swin UperNet recipe
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
