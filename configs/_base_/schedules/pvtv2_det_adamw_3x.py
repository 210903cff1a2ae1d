# Shunted Mask R-CNN 3x -- OUR CHOICE: PVT v2 publishes no 3x Mask R-CNN recipe. We keep its optimizer
# (AdamW lr 2e-4, weight decay 1e-4) and warm-up, and take the 3x length of the Swin recipe the Shunted paper
# compares against: 36 epochs, lr x0.1 at 27 and 33.
_base_ = './pvtv2_det_adamw_1x.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
