"""The test suite: one folder per package under test, the helpers they share in `tests.support`."""
