"""Suite-wide check: every computation built anywhere in the test suite prints to text that
parses back to an equal computation (`parse_computation(str(c), c.leaves()) == c`)."""

import pytest

import fcore
from fcore.tracing.computation import Computation
from support import leaf_calls  # noqa: F401 - a fixture for every test

_built = []  # strong references: computations local to a test are checked too
_original_init = Computation.__init__


def _recording_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    _built.append(self)


# Installed when pytest loads this file, before the test modules (and their module-level
# computations) are imported.
Computation.__init__ = _recording_init


@pytest.fixture(scope="session", autouse=True)
def every_computation_round_trips_through_text():
    yield
    Computation.__init__ = _original_init
    failures = []
    for computation in list(_built):
        if computation.outer_names():
            continue  # defined inside another computation: checked as part of that one
        try:
            again = fcore.parse_computation(str(computation), computation.leaves())
            if again != computation:
                failures.append(f"{computation.name}: parsed text differs:\n{computation}")
        except Exception as e:  # noqa: BLE001 - report every failure, then fail once
            failures.append(f"{computation.name}: {type(e).__name__}: {e}")
    assert not failures, f"{len(failures)} of {len(_built)} computations do not round-trip:\n" \
        + "\n".join(failures[:10])
    print(f"\n{len(_built)} computations built by the tests round-trip through text.")
