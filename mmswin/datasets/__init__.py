"""Data set helpers that import neither torch nor mmdet / mmseg: checks of the files a data set refers to
(:mod:`.checks`), the labelme converter (:mod:`.labelme`), the demo data (:mod:`.demo_data`) and the data sets inside
dataset wrappers (:mod:`.wrappers`). The package exports the checks; import the others from their modules."""
from .checks import CHECK_LEVELS, DataCheckError, check_dataset, check_sample, check_samples

__all__ = ['CHECK_LEVELS', 'DataCheckError', 'check_dataset', 'check_sample', 'check_samples']
