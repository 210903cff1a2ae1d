# ADE20K (stock mmseg data set settings, data_root data/ade/ADEChallengeData2016) at the UperNet recipe's
# 512x512 crops and 2 images per GPU (8 GPUs: batch 16); one image per GPU for validation.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
