"""`import fcore` and all type-level work never import TensorFlow."""

import subprocess
import sys

SCRIPT = """
import sys
import fcore
t = fcore.parse_type('<x=float32[?,784],y=int32[?]>*')
assert str(t) == '<x=float32[?,784],y=int32[?]>*'
fcore.to_type({'a': 'int32'}).is_assignable_from(t)
t.formatted()
print('tensorflow' in sys.modules, 'keras' in sys.modules)
"""


def test_type_work_does_not_import_tensorflow():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"


def test_importtime_shows_no_tensorflow():
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import fcore"],
                         capture_output=True, text=True, check=True)
    assert "tensorflow" not in out.stderr
    assert "fcore" in out.stderr
