# ADE20K (stock mmseg data set settings, data_root data/ade/ADEChallengeData2016) at the 640x640 crops of the Swin
# ImageNet-22K UperNet models: resize to scale 2560x640 x0.5-2.0, crop 640 with cat_max_ratio 0.75, flip,
# photometric distortion; testing at 2560x640 (mmseg::_base_/datasets/ade20k_640x640.py). 2 images per GPU
# (8 GPUs: batch 16); one image per GPU for validation.
_base_ = 'mmseg::_base_/datasets/ade20k_640x640.py'

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
