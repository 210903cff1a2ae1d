# "It really learns" (tests/test_demo.py, tests/test_resume.py): a tiny Swin (C=32, one block per stage) with a
# slim UperNet overfits the 3 demo photos at 192x144 in a couple of minutes on 2 CPU cores. Only working training
# reaches the bars the test sets (mIoU > 75 on the training photos, measured 80.7; background everywhere gives ~8).
_base_ = './upernet_swin_t_demo.py'

img_scale = (192, 144)  # (w, h), fixed: the 3 photos form one batch without random crops
max_iters = 200

model = dict(
    data_preprocessor=dict(size=(144, 192)),
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)),
                  drop_path_rate=0.0),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64),
    auxiliary_head=dict(in_channels=128, channels=32))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=3, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=10, end=max_iters, by_epoch=False),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100))
