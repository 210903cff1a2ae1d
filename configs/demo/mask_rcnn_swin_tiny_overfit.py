# "It really learns" (tests/test_demo.py): a tiny Swin (C=32, one block per stage) with a slim Mask R-CNN (FPN and
# heads at 64 channels) overfits the 3 demo photos (12 instances) at 320x240 on 2 CPU cores. Only working training
# reaches the bar the test sets (box AP > 0.5 on the training photos, measured 0.870; an untrained model scores 0.0).
_base_ = './mask_rcnn_swin_t_fpn_demo.py'

img_scale = (320, 240)
max_iters = 100

model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)),
                  drop_path_rate=0.0),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64)),
    train_cfg=dict(rcnn=dict(sampler=dict(num=128))))  # 128 sampled RoIs per image (recipe: 512)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=3, sampler=dict(type='InfiniteSampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1.5e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[80], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=50))
log_processor = dict(by_epoch=False)
