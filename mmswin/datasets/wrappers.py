"""The data sets inside mmengine / mmdet / mmseg dataset wrappers, for built data sets and for their configs.

Wrappers: ``ConcatDataset`` (``datasets``), ``RepeatDataset`` / ``ClassBalancedDataset`` / ``MultiImageMixDataset``
(``dataset``). Standard library only.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ['leaf_datasets', 'leaf_dataset_cfgs']


def leaf_datasets(dataset: Any) -> list[Any]:
    """The data sets behind a built (possibly wrapped) data set, in order."""
    if isinstance(getattr(dataset, 'datasets', None), (list, tuple)):
        return [leaf for d in dataset.datasets for leaf in leaf_datasets(d)]
    if type(dataset).__name__ in ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def leaf_dataset_cfgs(dataset: Mapping, key: str = 'dataset') -> Iterator[tuple[Mapping, str]]:
    """The data set configs inside a (possibly wrapped) data set config, each with its config key
    (``'train_dataloader.dataset.datasets[1]'`` when ``key`` is ``'train_dataloader.dataset'``)."""
    if isinstance(dataset.get('dataset'), Mapping):
        yield from leaf_dataset_cfgs(dataset['dataset'], f'{key}.dataset')
    elif isinstance(dataset.get('datasets'), (list, tuple)):
        for i, sub in enumerate(dataset['datasets']):
            if isinstance(sub, Mapping):
                yield from leaf_dataset_cfgs(sub, f'{key}.datasets[{i}]')
    else:
        yield dataset, key
