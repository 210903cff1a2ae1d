"""Data set helpers that import neither mmdet nor mmseg: file checks (:mod:`.checks`)."""
from .checks import CHECK_LEVELS, DataCheckError, check_dataset, check_sample, check_samples

__all__ = ['CHECK_LEVELS', 'DataCheckError', 'check_dataset', 'check_sample', 'check_samples']
