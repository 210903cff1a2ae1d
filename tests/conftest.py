"""Test-wide hygiene."""
import pytest


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
