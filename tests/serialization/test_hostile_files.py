"""fcore.load on hostile files: unsafe names, zip and manifest bombs, lying headers, corrupt
streams, swapped SavedModels, and signed files. Every hostile file is built here, under
tmp_path; each must fail with fcore.SerializationError, most before anything is extracted."""

import contextlib
import hashlib
import io
import json
import struct
import zipfile

import numpy as np
import pytest

import fcore
from fcore import CLIENTS, SERVER, FederatedType, serialization

KEY = b"a test key, not a secret"
MIB = 2**20


@fcore.tf_computation(np.float32, np.float32)
def scaled(value, factor):
    return value * factor


@fcore.federated_computation(FederatedType(np.float32, CLIENTS),
                             FederatedType(np.float32, SERVER))
def scaled_mean(values, factor):
    pairs = fcore.federated_zip((values, fcore.federated_broadcast(factor)))
    return fcore.federated_mean(fcore.federated_map(scaled, pairs))


@fcore.tf_computation(np.int32)
def negated(x):
    return -x


@fcore.tf_computation(np.float32, np.float32)
def both(a, b):
    return a, b


# Saved once per module: TF's saving is the slow part.
@pytest.fixture(scope="module")
def saved():
    return serialization.to_bytes(scaled_mean)


@pytest.fixture(scope="module")
def signed():
    return serialization.to_bytes(scaled_mean, key=KEY)


@pytest.fixture(scope="module")
def others():
    return {"negated": serialization.to_bytes(negated), "both": serialization.to_bytes(both)}


@pytest.fixture
def no_extraction(monkeypatch):
    """Fails the test if loading gets as far as extracting anything."""
    def refuse():
        raise AssertionError("fcore.load started extracting a hostile file")
    monkeypatch.setattr(serialization, "_scratch", refuse)


# Helpers ------------------------------------------------------------------------------------

def members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write(path, files, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def manifest_of(files):
    return json.loads(files["manifest.json"])


def reseal(files, manifest=None):
    """Recomputes every hash in the manifest and its digest (a consistent forgery)."""
    manifest = manifest or manifest_of(files)
    for leaf, info in manifest["leaves"].items():
        info["files"] = {relative: hashlib.sha256(files[f"leaves/{leaf}/{relative}"])
                         .hexdigest() for relative in info["files"]}
    manifest["digest"] = serialization._digest(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def rename_leaf(files, old, new):
    """Moves leaf `old` to the name `new` in the manifest and the members (IR unchanged)."""
    manifest = manifest_of(files)
    manifest["leaves"][new] = manifest["leaves"].pop(old)
    for name in [n for n in files if n.startswith(f"leaves/{old}/")]:
        files[f"leaves/{new}/" + name[len(f"leaves/{old}/"):]] = files.pop(name)
    manifest["digest"] = serialization._digest(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def patch_sizes(path, member, file_size=None, compress_size=None):
    """Rewrites the sizes `member` declares, in its local header and the central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    local = info.header_offset
    central = data.index(b"PK\x01\x02" + data[local + 4:local + 4], local)
    while True:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data,
                                                                       central + 28)
        if data[central + 46:central + 46 + name_length] == member.encode():
            break
        central += 46 + name_length + extra_length + comment_length
    for offset, field in [(local + 18, compress_size), (local + 22, file_size),
                          (central + 20, compress_size), (central + 24, file_size)]:
        if field is not None:
            struct.pack_into("<I", data, offset, field)
    path.write_bytes(bytes(data))
    return path


@contextlib.contextmanager
def kept_scratch(directory):
    """A scratch directory that is not removed, to see what loading wrote."""
    directory.mkdir()
    yield str(directory)


def written_bytes(directory):
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


PB = "leaves/scaled/saved_model.pb"


# Unsafe names -------------------------------------------------------------------------------

def test_an_absolute_leaf_name_fails_and_writes_nothing_there(tmp_path, saved, no_extraction):
    target = tmp_path / "some" / "dir"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"original")
    path = write(tmp_path / "c.fcore", rename_leaf(members(saved), "scaled", str(target)))
    assert any(name.startswith(f"leaves/{target}/") for name in members(path.read_bytes()))
    with pytest.raises(fcore.SerializationError, match="unsafe leaf name") as error:
        fcore.load(path)
    assert str(path) in str(error.value)
    assert sorted(p.name for p in target.iterdir()) == ["saved_model.pb"]
    assert (target / "saved_model.pb").read_bytes() == b"original"


def test_an_absolute_leaf_name_fails_when_nothing_exists_there(tmp_path, saved, no_extraction):
    target = tmp_path / "absent" / "dir"
    path = write(tmp_path / "c.fcore", rename_leaf(members(saved), "scaled", str(target)))
    with pytest.raises(fcore.SerializationError, match="unsafe leaf name"):
        fcore.load(path)
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name", ["..", "../escape", "../../escape", "a/../../b", "", "a//b",
                                  "a/b", "./a", "C:evil", "c:/evil", "a\\..\\b", "x\x00y",
                                  " a", "caf\u00e9", "1leaf"])
@pytest.mark.filterwarnings("ignore:Duplicate name")  # zip names end at a NUL
def test_unsafe_leaf_names_fail_before_extraction(tmp_path, saved, no_extraction, name):
    path = write(tmp_path / "c.fcore", rename_leaf(members(saved), "scaled", name))
    with pytest.raises(fcore.SerializationError, match="unsafe leaf name|holds .* twice"):
        fcore.load(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.fcore"]


@pytest.mark.parametrize("relative", ["../../evil", "/abs/evil", "variables/../../evil", "..",
                                      "", "a//b", "./a", ".hidden", "a\\b", "C:/evil", "x\x00y",
                                      "a/" * 20 + "b"])
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_unsafe_file_paths_fail_before_extraction(tmp_path, saved, no_extraction, relative):
    files = members(saved)
    manifest = manifest_of(files)
    manifest["leaves"]["scaled"]["files"][relative] = "0" * 64
    manifest["digest"] = serialization._digest(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()
    files[f"leaves/scaled/{relative}"] = b""
    path = write(tmp_path / "c.fcore", files)
    with pytest.raises(fcore.SerializationError, match="unsafe path"):
        fcore.load(path)


def test_an_ir_that_names_a_missing_leaf_fails_before_extraction(tmp_path, saved,
                                                                 no_extraction):
    files = members(saved)
    manifest = manifest_of(files)
    manifest["ir"] = manifest["ir"].replace("@scaled", "@missing")
    manifest["digest"] = serialization._digest(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(fcore.SerializationError, match="text is invalid"):
        fcore.load(write(tmp_path / "c.fcore", files))


def test_duplicate_members_fail(tmp_path, saved, no_extraction):
    files = members(saved)
    path = write(tmp_path / "c.fcore", files)
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(PB, b"a second copy")
    with pytest.raises(fcore.SerializationError, match="twice"):
        fcore.load(path)


# Bombs and caps -----------------------------------------------------------------------------

def test_a_member_bomb_fails_from_the_zip_directory(tmp_path, saved, no_extraction):
    files = members(saved)
    files[PB] = bytes(10 * MIB)
    path = write(tmp_path / "c.fcore", reseal(files))
    assert path.stat().st_size < 100_000
    with pytest.raises(fcore.SerializationError, match="max_member_bytes") as error:
        fcore.load(path, max_member_bytes=MIB)
    assert str(path) in str(error.value) and str(10 * MIB) in str(error.value)
    with pytest.raises(fcore.SerializationError, match="max_total_bytes"):
        fcore.load(path, max_total_bytes=2 * MIB)


def test_a_member_whose_header_lies_cannot_inflate_past_it(tmp_path, saved, monkeypatch):
    files = members(saved)
    files[PB] = bytes(10 * MIB)
    path = patch_sizes(write(tmp_path / "c.fcore", reseal(files)), PB, file_size=1000)
    scratch = tmp_path / "scratch"
    monkeypatch.setattr(serialization, "_scratch", lambda: kept_scratch(scratch))
    with pytest.raises(fcore.SerializationError, match=str(path)):
        fcore.load(path, max_member_bytes=MIB)
    assert written_bytes(scratch) <= 1000 + 1000  # the small members and at most 1000 bytes


def test_a_manifest_bomb_fails_from_the_zip_directory(tmp_path, saved, no_extraction):
    files = members(saved)
    manifest = manifest_of(files)
    files["manifest.json"] = json.dumps(manifest).encode() + b" " * (4 * MIB)
    path = write(tmp_path / "c.fcore", files)
    with pytest.raises(fcore.SerializationError, match="max_manifest_bytes"):
        fcore.load(path, max_manifest_bytes=MIB)


def test_a_manifest_whose_header_lies_fails(tmp_path, saved, no_extraction):
    files = members(saved)
    files["manifest.json"] = files["manifest.json"] + b" " * (4 * MIB)
    path = patch_sizes(write(tmp_path / "c.fcore", files), "manifest.json", file_size=100)
    with pytest.raises(fcore.SerializationError, match=str(path)):
        fcore.load(path, max_manifest_bytes=MIB)


def test_a_huge_file_is_refused_without_reading_it(tmp_path):
    huge = tmp_path / "huge.fcore"
    with open(huge, "wb") as f:
        f.truncate(64 * 2**30)  # sparse: reading it whole would take minutes
    with pytest.raises(fcore.SerializationError, match="too large") as error:
        fcore.load(huge)
    assert str(huge) in str(error.value)
    small_cap = tmp_path / "big.fcore"
    small_cap.write_bytes(b"x" * (3 * MIB))
    with pytest.raises(fcore.SerializationError, match="max_file_bytes"):
        fcore.load(small_cap, max_file_bytes=2 * MIB)
    with pytest.raises(fcore.SerializationError, match="not a zip archive"):
        fcore.load(small_cap)


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(fcore.SerializationError, match="expected a regular file"):
        fcore.load(tmp_path)


def test_limits_must_be_positive_ints(tmp_path, saved):
    path = tmp_path / "c.fcore"
    path.write_bytes(saved)
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="max_member_bytes must be a positive int"):
            fcore.load(path, max_member_bytes=bad)


# Corrupt streams ----------------------------------------------------------------------------

def test_a_corrupt_deflate_stream_fails(tmp_path, saved):
    path = write(tmp_path / "c.fcore", members(saved))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(PB)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(PB.encode())  # no extra field: written here
    data[start:start + info.compress_size] = b"\xff" * info.compress_size
    path.write_bytes(bytes(data))
    with pytest.raises(fcore.SerializationError, match=str(path)):
        fcore.load(path)


def test_a_truncated_deflate_stream_fails(tmp_path, saved):
    path = write(tmp_path / "c.fcore", members(saved))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(PB)
    patch_sizes(path, PB, compress_size=info.compress_size // 2)
    with pytest.raises(fcore.SerializationError, match=str(path)):
        fcore.load(path)


def test_a_truncated_file_fails(tmp_path, saved):
    path = tmp_path / "c.fcore"
    path.write_bytes(saved[:len(saved) // 2])
    with pytest.raises(fcore.SerializationError, match="not a zip archive"):
        fcore.load(path)


def test_other_compression_methods_fail(tmp_path, saved, no_extraction):
    path = write(tmp_path / "c.fcore", members(saved), compression=zipfile.ZIP_BZIP2)
    with pytest.raises(fcore.SerializationError, match="compression method"):
        fcore.load(path)


@pytest.mark.parametrize("manifest", [b"\xff\xfe not utf-8", b"[" * 100_000, b"1" * 5000,
                                      b'{"format": "fcore-computation", "format": "x"}',
                                      b'{"format": "fcore-computation", "version": true}'])
def test_malformed_manifests_fail(tmp_path, saved, no_extraction, manifest):
    files = members(saved)
    files["manifest.json"] = manifest
    with pytest.raises(fcore.SerializationError):
        fcore.load(write(tmp_path / "c.fcore", files))


# Swapped leaves -----------------------------------------------------------------------------

@pytest.mark.parametrize("other", ["negated", "both"])
def test_a_swapped_leaf_with_another_signature_fails(tmp_path, saved, others, other):
    files = members(saved)
    for name in [n for n in files if n.startswith("leaves/scaled/")]:
        del files[name]
    manifest = manifest_of(files)
    foreign = members(others[other])
    manifest["leaves"]["scaled"]["files"] = {}
    for name, data in foreign.items():
        if name.startswith(f"leaves/{other}/"):
            relative = name[len(f"leaves/{other}/"):]
            files[f"leaves/scaled/{relative}"] = data
            manifest["leaves"]["scaled"]["files"][relative] = ""
    path = write(tmp_path / "c.fcore", reseal(files, manifest))
    with pytest.raises(fcore.SerializationError, match="does not match its declared type") \
            as error:
        fcore.load(path)
    assert str(path) in str(error.value) and "expected inputs (float32, float32)" in \
        str(error.value)


# Signed files -------------------------------------------------------------------------------

def test_a_signed_file_round_trips_with_its_key(tmp_path):
    path = tmp_path / "c.fcore"
    fcore.save(scaled_mean, path, key="a str key")
    assert "signature.json" in members(path.read_bytes())
    loaded = fcore.load(path, key=b"a str key")
    assert loaded([1.0, 2.0, 6.0], 2.0) == 6.0
    assert fcore.load(path)([1.0, 2.0, 6.0], 2.0) == 6.0  # without a key: digests only


def test_a_wrong_key_fails_before_extraction(tmp_path, signed, no_extraction):
    path = tmp_path / "c.fcore"
    path.write_bytes(signed)
    with pytest.raises(fcore.SerializationError, match="signature does not verify"):
        fcore.load(path, key=b"another key")


def test_an_unsigned_file_fails_with_a_key(tmp_path, saved, no_extraction):
    path = tmp_path / "c.fcore"
    path.write_bytes(saved)
    with pytest.raises(fcore.SerializationError, match="not signed"):
        fcore.load(path, key=KEY)


def test_a_signed_file_without_its_signature_fails_with_a_key(tmp_path, signed,
                                                               no_extraction):
    files = members(signed)
    del files["signature.json"]
    with pytest.raises(fcore.SerializationError, match="not signed"):
        fcore.load(write(tmp_path / "c.fcore", files), key=KEY)


def test_a_tampered_member_of_a_signed_file_fails(tmp_path, signed, no_extraction):
    files = members(signed)
    files[PB] = files[PB][:-1] + b"x"
    path = write(tmp_path / "c.fcore", reseal(files))  # digests recomputed, signature kept
    with pytest.raises(fcore.SerializationError, match="signature does not verify"):
        fcore.load(path, key=KEY)


def test_a_tampered_member_of_a_signed_file_fails_its_hash(tmp_path, signed):
    files = members(signed)
    files[PB] = files[PB][:-1] + b"x"  # digests not recomputed: the signature still verifies
    with pytest.raises(fcore.SerializationError, match="does not match its hash"):
        fcore.load(write(tmp_path / "c.fcore", files), key=KEY)


@pytest.mark.parametrize("signature", [b"not json", b'{"format": "fcore-signature"}',
                                       b"x" * 5000])
def test_a_malformed_signature_fails(tmp_path, signed, no_extraction, signature):
    files = members(signed)
    files["signature.json"] = signature
    with pytest.raises(fcore.SerializationError):
        fcore.load(write(tmp_path / "c.fcore", files), key=KEY)


def test_keys_are_bytes_or_str(tmp_path, saved):
    with pytest.raises(TypeError, match="key must be bytes or str"):
        fcore.save(scaled_mean, tmp_path / "c.fcore", key=123)
    with pytest.raises(ValueError, match="must not be empty"):
        fcore.load(tmp_path / "c.fcore", key=b"")
    assert not list(tmp_path.iterdir())
