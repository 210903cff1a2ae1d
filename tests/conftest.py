"""Test-wide hygiene."""
import os

import pytest


def pytest_configure(config):
    """Under pytest-xdist (``make test``: 2 workers), each worker takes its share of the cores for torch's
    intra-op threads (and the processes the tests start), instead of every worker using them all. Runs before any
    test module imports torch, so OpenMP reads it."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // workers)))
    # Every test module runs as the tools do, alone or with the others: mmswin's runtime (weights-only loading of
    # mmengine checkpoints, the atomic storage backend, mmdet:: / mmseg:: config bases) installed once, before any
    # module is collected (some build configs at collection time).
    from mmswin.engine import setup_runtime
    setup_runtime()


def _manager_classes():
    from mmengine.utils import ManagerMixin
    todo, seen = [ManagerMixin], []
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in seen if '_instance_dict' in vars(cls)]


@pytest.fixture(autouse=True)
def _restore_mmengine_globals():
    """Give each test the process-wide mmengine instances it started with.

    A Runner registers its ``DefaultScope`` (which redirects every later ``MODELS.build``), ``Visualizer``,
    ``MessageHub`` and logger by experiment name (``<config>_<timestamp in seconds>``): a second Runner of the same
    config within the same second would otherwise reuse the first one's visualizer and write its scalars there.
    """
    import mmengine.visualization  # noqa: F401  (the classes must exist before the snapshot)
    saved = {cls: dict(cls._instance_dict) for cls in _manager_classes()}
    yield
    for cls in _manager_classes():
        cls._instance_dict.clear()
        cls._instance_dict.update(saved.get(cls, {}))
