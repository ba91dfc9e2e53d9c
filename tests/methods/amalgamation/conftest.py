"""Fixtures of the amalgamation tests."""
import pytest

from tests.methods.amalgamation.tiny_teachers import make_teacher


@pytest.fixture
def teacher_factory(tmp_path):
    def make(name, arch, num_classes, **kw):
        return make_teacher(tmp_path / name, arch, num_classes, **kw)
    return make
