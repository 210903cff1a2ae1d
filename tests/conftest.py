"""Test-wide hygiene."""
import pytest


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """A Runner built in one test sets mmengine's process-wide ``DefaultScope`` (e.g. 'mmengine' or 'mmseg'), which
    redirects every later ``MODELS.build``; give each test the scope state it started with."""
    from mmengine.registry import DefaultScope
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)
