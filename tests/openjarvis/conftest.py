from tests.cli.conftest import _clean_env  # noqa: F401  (the developer's env never leaks in)
