"""Small utilities that do not import mmdet or mmseg."""
