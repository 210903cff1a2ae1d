# UperNet + Swin-T on your own data, one GPU. The data: a folder in the ADE20K layout with a meta.json, as
# `tools/dataset_converters/labelme2mmswin.py LABELME_DIR --labels labels.txt --seg-out data/my_ade` writes it
# (images/{training,validation}/*.jpg, annotations/{training,validation}/*.png: 0 = ignore, k + 1 = classes[k]).
# Name the folder with one environment variable; classes, palette and the number of classes come from meta.json:
#
#   MMSWIN_DATA=data/my_ade .venv/bin/python tools/train.py configs/own_data/upernet_swin_t_own.py
#   .venv/bin/python tools/test.py work_dirs/upernet_swin_t_own/upernet_swin_t_own.py CHECKPOINT
#
# (the config saved in the work dir holds the classes, so testing needs no MMSWIN_DATA). What differs from the
# ADE20K recipe (configs/upernet_swin_t_ade20k.py, 160k iterations of batch 16 on 8 GPUs), for a small data set on
# one GPU: batch 4, 8k iterations (200 warm-up, poly decay, the recipe's AdamW lr 6e-5), evaluation and a
# checkpoint every 1000 iterations, the best mIoU kept. Start from the ImageNet weights as the recipe does
# (checkpoints/swin_tiny_patch4_window7_224.pth, see the README's "Pretrained backbones"): a few hundred images do
# not train a transformer from scratch. A larger data set: raise max_iters (--cfg-options train_cfg.max_iters=N).
_base_ = '../upernet_swin_t_ade20k.py'

from mmswin.datasets.labelme import read_meta  # noqa: E402

data_root = '{{$MMSWIN_DATA:data/my_ade}}'
own_meta = read_meta(data_root)
metainfo = dict(classes=own_meta['classes'], palette=own_meta['palette'])
num_classes = len(own_meta['classes'])
max_iters = 8000
interval = 1000

model = dict(decode_head=dict(num_classes=num_classes), auxiliary_head=dict(num_classes=num_classes))

# BaseSegDataset, not ADE20KDataset: the latter only accepts subsets of the 150 ADE20K class names.
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4, num_workers=2,
    dataset=dict(_delete_=True, **dataset, pipeline={{_base_.train_pipeline}},
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')))
val_dataloader = dict(
    dataset=dict(_delete_=True, **dataset, pipeline={{_base_.test_pipeline}},
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation')))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=200),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=200, end=max_iters, by_epoch=False),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=interval, max_keep_ckpts=2, save_best='mIoU'))
auto_scale_lr = dict(enable=False, base_batch_size=4)
