"""fcore.save / fcore.load: one file, no pickle, a fresh process, and clean failures."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fcore
from fcore import CLIENTS, FederatedType, serialization


@fcore.tf_computation(np.float32, np.float32)
def scaled(value, factor):
    return value * factor


@fcore.tf_computation(fcore.SequenceType(np.int32))
def total(numbers):
    return numbers.reduce(np.int32(0), lambda a, b: a + b)


@fcore.federated_computation(FederatedType(np.float32, CLIENTS), fcore.FederatedType(
    np.float32, fcore.SERVER))
def scaled_mean(values, factor):
    pairs = fcore.federated_zip((values, fcore.federated_broadcast(factor)))
    return fcore.federated_mean(fcore.federated_map(scaled, pairs))


@fcore.federated_computation(FederatedType(fcore.SequenceType(np.int32), CLIENTS))
def sum_of_totals(data):
    return fcore.federated_sum(fcore.federated_map(total, data))


def test_a_saved_computation_loads_equal_and_runs(tmp_path):
    path = tmp_path / "scaled_mean.fcore"
    fcore.save(scaled_mean, path)
    loaded = fcore.load(path)
    assert str(loaded.type_signature) == str(scaled_mean.type_signature)
    assert str(loaded) == str(scaled_mean)
    assert loaded([1.0, 2.0, 6.0], 2.0) == scaled_mean([1.0, 2.0, 6.0], 2.0) == 6.0


def test_sequences_survive_saving(tmp_path):
    path = tmp_path / "sums.fcore"
    fcore.save(sum_of_totals, path)
    assert fcore.load(path)([[1, 2], [3, 4, 5]]) == 15


LOADER = """
import sys
import fcore
computation = fcore.load(sys.argv[1])
print(computation.type_signature)
print(computation([1.0, 2.0, 6.0], 2.0))
print('test_save_load' in sys.modules, 'pickle' in sys.modules and 'used' or 'ok')
"""


def test_loads_in_a_fresh_process_that_never_saw_the_code(tmp_path):
    path = tmp_path / "scaled_mean.fcore"
    fcore.save(scaled_mean, path)
    out = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True,
                         text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == str(scaled_mean.type_signature)
    assert float(lines[1]) == 6.0
    assert lines[2].startswith("False")


def test_the_file_is_a_zip_of_a_manifest_and_savedmodels_without_pickles(tmp_path):
    path = tmp_path / "c.fcore"
    fcore.save(scaled_mean, path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "fcore-computation" and manifest["version"] == 1
    assert manifest["ir"] == scaled_mean.to_text(formatted=False)
    assert "leaves/scaled/saved_model.pb" in names
    assert not any(name.endswith((".pkl", ".pickle")) for name in names)


def _rewrite(path, change):
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    change(files)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("tamper, message", [
    (lambda f: f.__setitem__("leaves/scaled/saved_model.pb",
                             f["leaves/scaled/saved_model.pb"][:-1] + b"x"),
     "does not match its hash"),
    (lambda f: f.__setitem__("extra.py", b"import os"), "do not match its manifest"),
    (lambda f: f.__setitem__("manifest.json", b"{not json"), "not valid JSON"),
    (lambda f: f.__setitem__("manifest.json", json.dumps({"format": "other"}).encode()),
     "format 'other'"),
    (lambda f: f.__setitem__("manifest.json", json.dumps(
        {**json.loads(f["manifest.json"]), "version": 99}).encode()), "unsupported version"),
    (lambda f: f.__setitem__("manifest.json", f["manifest.json"].replace(
        b"federated_mean", b"federated_sum")), "does not match its digest"),
])
def test_a_tampered_file_fails_cleanly(tmp_path, tamper, message):
    path = tmp_path / "c.fcore"
    fcore.save(scaled_mean, path)
    _rewrite(path, tamper)
    with pytest.raises(fcore.SerializationError, match=message):
        fcore.load(path)


def test_an_unsafe_path_in_the_manifest_is_refused(tmp_path):
    path = tmp_path / "c.fcore"
    fcore.save(scaled_mean, path)

    def escape(files):
        manifest = json.loads(files["manifest.json"])
        manifest["leaves"]["scaled"]["files"]["../../evil"] = "0" * 64
        manifest["digest"] = serialization._digest(manifest)  # a consistent forgery
        files["manifest.json"] = json.dumps(manifest).encode()
        files["leaves/scaled/../../evil"] = b""
    _rewrite(path, escape)
    with pytest.raises(fcore.SerializationError, match="unsafe path"):
        fcore.load(path)


def test_a_foreign_file_fails_cleanly(tmp_path):
    foreign = tmp_path / "foreign.fcore"
    foreign.write_bytes(b"\x80\x04\x95 this is not a zip")
    with pytest.raises(fcore.SerializationError, match="not a zip archive"):
        fcore.load(foreign)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(fcore.SerializationError, match="no manifest.json"):
        fcore.load(empty)
    with pytest.raises(fcore.SerializationError, match="Cannot read"):
        fcore.load(tmp_path / "missing.fcore")


def test_serialization_error_is_a_value_error():
    assert issubclass(fcore.SerializationError, ValueError)


def test_only_computations_are_saved(tmp_path):
    @fcore.federated_computation
    def polymorphic(x):
        return x

    with pytest.raises(TypeError, match="polymorphic computation: call it or give it"):
        fcore.save(polymorphic, tmp_path / "p.fcore")
    with pytest.raises(TypeError, match="found function"):
        fcore.save(lambda x: x, tmp_path / "f.fcore")
    assert not list(tmp_path.iterdir())  # nothing written
