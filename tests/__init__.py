import pytest

# Helper modules whose asserts are the tests' own, moved out of test files: their failures
# explain themselves as the tests' do (pytest rewrites only test files by itself).
pytest.register_assert_rewrite("tests.hostile")
