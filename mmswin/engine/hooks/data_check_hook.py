"""``DataCheckHook``: every file the data sets refer to is checked before the first iteration."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmswin.datasets.checks import CHECK_LEVELS, DataCheckError, check_dataset

__all__ = ['DataCheckHook']


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Check every file the training and validation data sets refer to, before the first iteration.

    Missing images or label maps, unreadable or truncated files, label maps whose size differs from their image,
    COCO images whose size differs from the json raise :class:`~mmswin.datasets.checks.DataCheckError` naming
    the file, instead of failing inside a data loader worker or training on wrong labels.

    Args:
        level (str): ``'exists'``, ``'header'`` (default; a few kB read per file) or ``'decode'`` (every file decoded
            and label values checked; slow on big data sets). See :mod:`mmswin.datasets.checks`.
        check_val (bool): also check the validation set at the start of training. Default True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, level: str = 'header', check_val: bool = True) -> None:
        if level not in CHECK_LEVELS:
            raise ValueError(f'level must be one of {CHECK_LEVELS}, got {level!r}')
        self.level = level
        self.check_val = check_val
        self._checked: set[int] = set()

    def _check(self, runner, loop, split: str) -> None:
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if dataset is None or id(dataset) in self._checked:
            return
        try:
            check_dataset(dataset, self.level, runner.logger, split)
        except DataCheckError as err:
            raise DataCheckError(f'{split} data: {err}') from None
        self._checked.add(id(dataset))

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_loop, 'train')
        if self.check_val:
            self._check(runner, runner.val_loop, 'val')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_loop, 'val')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop, 'test')
