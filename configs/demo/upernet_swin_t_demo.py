# The demo: UperNet + Swin-T (configs/upernet_swin_t_ade20k.py) on the 3 PASCAL VOC 2011 photos of the labelme 6.3.1
# sdist, converted into the ADE20K layout by tools/prepare_demo_data.py (data/demo_ade, 21 VOC classes).
# What differs from the recipe, so that it ends in about 10 minutes on 2 CPU cores:
# * the backbone starts from the recipe's ImageNet-1K Swin-T file when tools/run_demo.py can download it (then at
#   the recipe's learning rate, finetune_lr), else from random weights (init_cfg=None, lr 5e-4, the default here);
# * images resized to a short side of ~256 (recipe: 512), 256x256 crops (recipe: 512x512);
# * 150 iterations of batch 2 (recipe: 160k of batch 16), lr 5e-4 (recipe: 6e-5, for ImageNet-initialised weights)
#   with a 10-iteration warm-up, poly decay, gradient clipping at norm 1;
# * the same 3 photos are the training and the validation set: mIoU measures fit, not generalisation.
# Measured on 2 CPU cores shared with other jobs: ~3.1 s per iteration; a 60-iteration run took 206 s end to end
# (mIoU 38.6); 150 iterations project to ~8.5 minutes.
# Run it with `python tools/run_demo.py --task seg` (prepares the data, trains, evaluates, writes overlays).
_base_ = '../upernet_swin_t_ade20k.py'

data_root = 'data/demo_ade/'
classes = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa', 'train',
           'tv/monitor')
palette = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128],
           [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128], [192, 0, 128],
           [64, 128, 128], [192, 128, 128], [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128]]
metainfo = dict(classes=classes, palette=palette)
num_classes = 21
crop_size = (256, 256)
img_scale = (1024, 256)
max_iters = 150

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(drop_path_rate=0.1, init_cfg=None),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# BaseSegDataset, not ADE20KDataset: the latter only accepts subsets of the 150 ADE20K classes. Same layout,
# same reduce_zero_label convention (annotation value 0 = ignore, k + 1 = classes[k]).
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(**dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(**dataset, data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=5e-4), clip_grad=dict(max_norm=1.0))  # from random weights
finetune_lr = 6e-5  # from ImageNet weights: the recipe's (tools/run_demo.py --pretrained sets it)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=10, end=max_iters, by_epoch=False),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=50, max_keep_ckpts=2, save_last=True))
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='DataCheckHook', level='decode')]
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=2)
