"""Saving a computation to one file and loading it in another process, without pickle.

The file is a zip archive: `manifest.json` (format, version, the IR text, the type
signature, and for each TF leaf its type and the SHA-256 of each of its files), per leaf a
TensorFlow SavedModel (graphs and variable values as protocol buffers), and, when saved with a
`key`, `signature.json`: an HMAC-SHA256 over the SHA-256 of the manifest and of every member.

Loading treats the file as hostile until proven otherwise:

* the archive's size, each member's size and the total size are checked against caps from the
  zip directory before anything is read, and enforced again while members are decompressed in
  chunks (so a zip whose headers lie cannot get past them);
* the whole manifest is validated (format, version, digest, leaf names and file paths, which
  must be plain relative names, the declared types, the IR and its type) before anything is
  written to disk, and with a `key` the signature is verified before anything is written;
* each member is streamed into a fresh temporary directory (every path checked to stay inside
  it) while its SHA-256 is computed, and compared with the manifest's;
* each restored SavedModel's input and output signature is compared with its leaf's declared
  type.

SavedModels hold no Python code, so a tampered or foreign file fails with
`fcore.SerializationError` instead of running anything. Without a key, the digests make a file
tamper-evident, not authenticated: someone who rewrites the whole file consistently makes a
new, valid file (which can still only do what fcore IR and TF graphs can do). Load only files
you trust, or sign them with a key."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib

FORMAT = "fcore-computation"
VERSION = 1
_MANIFEST = "manifest.json"
_SIGNATURE = "signature.json"
_SIGNATURE_FORMAT = "fcore-signature"
_SIGNATURE_ALGORITHM = "HMAC-SHA256"
_SIGNATURE_DOMAIN = b"fcore-computation signature v1\n"

DEFAULT_MAX_TOTAL_BYTES = 4 * 2**30
"""Default cap on the uncompressed size of all members of a file together (4 GiB)."""
DEFAULT_MAX_MEMBER_BYTES = 4 * 2**30
"""Default cap on the uncompressed size of any one member (4 GiB: a large variables file)."""
DEFAULT_MAX_MANIFEST_BYTES = 64 * 2**20
"""Default cap on the size of `manifest.json` (64 MiB)."""

_MAX_SIGNATURE_BYTES = 4096
_MAX_MEMBERS = 65536
_MAX_PATH_CHARS = 1024
_MAX_DEPTH = 16
_MAX_UNROLLED = 4096
_CHUNK = 1 << 20
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_LEAF_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@=-]{0,254}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class SerializationError(ValueError):
    """A file that is not a valid saved fcore computation."""


# Saving -------------------------------------------------------------------------------------

def save(computation, path, *, key=None):
    """Writes `computation` (with its TF leaves) to the file `path`.

    With `key` (bytes or str), the file is signed: it carries an HMAC-SHA256 over its manifest
    and every member, which `fcore.load(path, key=key)` verifies before reading anything."""
    data = to_bytes(computation, key=key)  # first: a failure leaves no file behind
    with open(path, "wb") as f:
        f.write(data)


def to_bytes(computation, *, key=None) -> bytes:
    """The saved form of `computation`, as bytes (signed with `key` if given)."""
    from fcore.computation import Computation
    if not isinstance(computation, Computation):
        kind = "a polymorphic computation: call it or give it parameter types first" \
            if hasattr(computation, "instantiate") else type(computation).__name__
        raise TypeError(f"fcore.save takes an fcore computation, found {kind}.")
    key = _key_bytes(key)
    import tensorflow as tf
    leaves = computation.leaves()
    files, manifest_leaves = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, leaf in sorted(leaves.items()):
            directory = os.path.join(tmp, name)
            module = tf.Module()
            module.function = leaf.saveable_function()
            module.captured = list(leaf.captured_variables())
            unrolled = leaf.unrolled_variants() if hasattr(leaf, "unrolled_variants") else {}
            for lengths, function in unrolled.items():
                setattr(module, "unrolled_" + "_".join(map(str, lengths)), function)
            tf.saved_model.save(module, directory)
            hashes = {}
            for root, _, names in os.walk(directory):
                for file_name in sorted(names):
                    full = os.path.join(root, file_name)
                    relative = os.path.relpath(full, directory).replace(os.sep, "/")
                    with open(full, "rb") as f:
                        data = f.read()
                    files[f"leaves/{name}/{relative}"] = data
                    hashes[relative] = hashlib.sha256(data).hexdigest()
            manifest_leaves[name] = {"type": str(leaf.type_signature), "files": hashes,
                                     "unrolled": sorted(list(k) for k in unrolled)}
    manifest = {"format": FORMAT, "version": VERSION, "name": computation.name,
                "type_signature": str(computation.type_signature),
                "ir": computation.to_text(formatted=False), "leaves": manifest_leaves}
    manifest["digest"] = _digest(manifest)
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_MANIFEST, manifest_bytes)
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        if key is not None:
            signature = {"format": _SIGNATURE_FORMAT, "algorithm": _SIGNATURE_ALGORITHM,
                         "mac": _mac(key, manifest_bytes, manifest)}
            archive.writestr(_SIGNATURE, json.dumps(signature, sort_keys=True))
    return buffer.getvalue()


# Loading ------------------------------------------------------------------------------------

def load(path, *, key=None, max_total_bytes=DEFAULT_MAX_TOTAL_BYTES,
         max_member_bytes=DEFAULT_MAX_MEMBER_BYTES,
         max_manifest_bytes=DEFAULT_MAX_MANIFEST_BYTES, max_file_bytes=None):
    """Reads a computation saved by `fcore.save`; returns a callable `fcore.Computation`.

    key: bytes or str. If given, the file must carry a signature made with this key
        (`fcore.save(..., key=key)`), verified before anything is extracted; a file without
        one, or with one that does not verify, is refused. Without a key, a signed file loads
        too (its digests are checked, its signature is not).
    max_total_bytes: cap on the uncompressed size of all members together (default 4 GiB).
    max_member_bytes: cap on the uncompressed size of any one member (default 4 GiB).
    max_manifest_bytes: cap on the size of `manifest.json` (default 64 MiB).
    max_file_bytes: cap on the size of the file itself; by default `max_total_bytes` plus room
        for zip headers and deflate's worst case (1/512 of it, plus 16 MiB). A larger file is
        refused without being read.

    Every failure (unreadable, not a zip, over a cap, corrupt, altered, unsafe paths, a
    signature that does not verify, a TF leaf whose signature differs from its declared
    type, ...) raises `fcore.SerializationError` naming the file."""
    limits = _Limits(max_total_bytes, max_member_bytes, max_manifest_bytes, max_file_bytes)
    key = _key_bytes(key)
    where = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    where = os.fsdecode(where)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise SerializationError(f"Cannot read {where}: expected a regular file, found "
                                     f"{_file_kind(info.st_mode)}.")
        _check_file_size(info.st_size, limits, where)
        f = open(path, "rb")
    except OSError as e:
        raise SerializationError(f"Cannot read {where}: {e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        _check_file_size(size, limits, where)
        return _read(f, where, key, limits)


def from_bytes(data: bytes, where="<bytes>", *, key=None,
               max_total_bytes=DEFAULT_MAX_TOTAL_BYTES,
               max_member_bytes=DEFAULT_MAX_MEMBER_BYTES,
               max_manifest_bytes=DEFAULT_MAX_MANIFEST_BYTES, max_file_bytes=None):
    """The computation saved in `data` (see `load`, which takes the same keyword arguments)."""
    limits = _Limits(max_total_bytes, max_member_bytes, max_manifest_bytes, max_file_bytes)
    key = _key_bytes(key)
    _check_file_size(len(data), limits, where)
    return _read(io.BytesIO(data), where, key, limits)


class _Limits:
    def __init__(self, total, member, manifest, file):
        for name, value in [("max_total_bytes", total), ("max_member_bytes", member),
                            ("max_manifest_bytes", manifest)] + (
                                [("max_file_bytes", file)] if file is not None else []):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, found {value!r}.")
        self.total, self.member, self.manifest = total, member, manifest
        self.file = file if file is not None else total + total // 512 + 16 * 2**20


def _check_file_size(size, limits, where):
    if size > limits.file:
        raise SerializationError(f"{where} is too large to load: {size} bytes, more than the "
                                 f"limit of {limits.file} bytes (max_file_bytes; raise "
                                 f"max_total_bytes or max_file_bytes to load it).")


def _file_kind(mode):
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "something that is not a regular file"


# Errors from reading a malformed zip, deflate stream, JSON text or number, as raised by
# zipfile, zlib, json and struct.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OverflowError, EOFError, OSError, ValueError,
                KeyError, IndexError, struct.error, NotImplementedError, RuntimeError,
                RecursionError, UnicodeDecodeError)


def _read(fileobj, where, key, limits):
    try:
        try:
            archive = zipfile.ZipFile(fileobj)
        except _READ_ERRORS as e:
            raise SerializationError(f"{where} is not a saved fcore computation (not a zip "
                                     f"archive: {e}; expected a zip of {_MANIFEST} and "
                                     f"SavedModels).") from None
        with archive:
            return _read_archive(archive, where, key, limits)
    except SerializationError:
        raise
    except _READ_ERRORS as e:
        raise SerializationError(f"{where}: the archive is corrupt or unreadable "
                                 f"({type(e).__name__}: {e}).") from None


def _read_archive(archive, where, key, limits):
    # 1. The zip directory: names, sizes, methods; nothing decompressed yet.
    infos = _check_directory(archive, where, limits)
    # 2. The whole manifest, before anything is written.
    if _MANIFEST not in infos:
        raise SerializationError(f"{where} is not a saved fcore computation (no {_MANIFEST}).")
    manifest_bytes, _ = _read_member(archive, infos[_MANIFEST], limits.manifest, where)
    manifest = _manifest(manifest_bytes, where)
    expected = {_MANIFEST} | set(_member_digests(manifest))
    names = set(infos)
    if names - {_SIGNATURE} != expected:
        extra = sorted(names - expected - {_SIGNATURE})[:3]
        missing = sorted(expected - names)[:3]
        raise SerializationError(f"{where}: the archive's files do not match its manifest "
                                 f"(unexpected {extra}, missing {missing}).")
    _check_case_collisions(names, where)
    # 3. The signature, before anything is written.
    if key is not None:
        _verify_signature(archive, infos, key, manifest_bytes, manifest, where)
    # 4. Extract each leaf (streamed, hashed, inside a fresh directory), then load it.
    with _scratch() as tmp:
        root = os.path.realpath(tmp)
        env = {}
        for leaf, info in sorted(manifest["leaves"].items()):
            directory = os.path.join(root, "leaves", leaf)
            for relative, digest in sorted(info["files"].items()):
                member = f"leaves/{leaf}/{relative}"
                target = os.path.join(directory, *relative.split("/"))
                _extract(archive, infos[member], digest, target, root, limits, where)
            env[leaf] = _load_leaf(leaf, info, directory, where)
        return _parse(manifest, env, where)


def _scratch():
    """A fresh temporary directory for the extracted SavedModels (a seam for tests)."""
    return tempfile.TemporaryDirectory(prefix="fcore-load-")


def _check_directory(archive, where, limits):
    """`{name: ZipInfo}`, after checking the zip directory against the caps."""
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise SerializationError(f"{where}: too many members (expected at most {_MAX_MEMBERS}, "
                                 f"found {len(infos)}).")
    by_name, total = {}, 0
    for info in infos:
        name = info.filename
        if name in by_name:
            raise SerializationError(f"{where}: the archive holds {name!r} twice (expected "
                                     f"each member once).")
        by_name[name] = info
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise SerializationError(f"{where}: member {name!r} uses compression method "
                                     f"{info.compress_type} (expected stored or deflated).")
        if info.flag_bits & 0x1:
            raise SerializationError(f"{where}: member {name!r} is encrypted (expected "
                                     f"plain members).")
        cap, cap_name = (limits.manifest, "max_manifest_bytes") if name == _MANIFEST else (
            (_MAX_SIGNATURE_BYTES, "the signature limit") if name == _SIGNATURE else
            (limits.member, "max_member_bytes"))
        if info.file_size > cap:
            raise SerializationError(f"{where}: member {name!r} declares {info.file_size} "
                                     f"bytes uncompressed, more than the limit of {cap} bytes "
                                     f"({cap_name}).")
        total += info.file_size
        if total > limits.total:
            raise SerializationError(f"{where}: the members declare more than {limits.total} "
                                     f"bytes uncompressed in all (max_total_bytes; found at "
                                     f"least {total}).")
    return by_name


def _chunks(archive, info, cap, where):
    """The decompressed content of member `info`, in chunks, never more than `cap` bytes or
    more than its declared size (whatever the headers or the stream say)."""
    count = 0
    with archive.open(info) as stream:
        while True:
            try:
                chunk = stream.read(_CHUNK)
            except _READ_ERRORS as e:
                raise SerializationError(
                    f"{where}: member {info.filename!r} is corrupt (expected a valid "
                    f"{_METHODS.get(info.compress_type, 'compressed')} stream of "
                    f"{info.file_size} bytes with CRC-32 {info.CRC:08x}, found "
                    f"{type(e).__name__}: {e}).") from None
            if not chunk:
                break
            count += len(chunk)
            if count > cap or count > info.file_size:
                raise SerializationError(f"{where}: member {info.filename!r} inflates to more "
                                         f"than {min(cap, info.file_size)} bytes (its declared "
                                         f"size or the limit); found at least {count}.")
            yield chunk
    if count != info.file_size:
        raise SerializationError(f"{where}: member {info.filename!r} holds {count} bytes, "
                                 f"but its header declares {info.file_size}.")


def _read_member(archive, info, cap, where):
    """(content, SHA-256 hex) of a small member."""
    digest, parts = hashlib.sha256(), []
    for chunk in _chunks(archive, info, cap, where):
        digest.update(chunk)
        parts.append(chunk)
    return b"".join(parts), digest.hexdigest()


def _extract(archive, info, expected_digest, target, root, limits, where):
    """Streams member `info` to `target` (a new file inside `root`), checking its hash."""
    parent = os.path.dirname(target)
    real = os.path.realpath(target)
    if not real.startswith(root + os.sep) or not os.path.realpath(parent).startswith(
            root + os.sep):
        raise SerializationError(f"{where}: unsafe path {info.filename!r} (expected a path "
                                 f"inside the extraction directory, found {real}).")
    os.makedirs(parent, exist_ok=True)
    if os.path.realpath(parent) != os.path.dirname(real):
        raise SerializationError(f"{where}: unsafe path {info.filename!r}.")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(target, flags, 0o600)
    except FileExistsError:
        raise SerializationError(f"{where}: {info.filename!r} would overwrite another member "
                                 f"(expected distinct paths).") from None
    digest = hashlib.sha256()
    with os.fdopen(descriptor, "wb") as out:
        for chunk in _chunks(archive, info, limits.member, where):
            digest.update(chunk)
            out.write(chunk)
    if not hmac.compare_digest(digest.hexdigest(), expected_digest):
        raise SerializationError(f"{where}: {info.filename} does not match its hash: the file "
                                 f"was altered (expected SHA-256 {expected_digest}, found "
                                 f"{digest.hexdigest()}).")


def _check_case_collisions(names, where):
    seen = {}
    for name in sorted(names):
        folded = name.casefold()
        if folded in seen:
            raise SerializationError(f"{where}: members {seen[folded]!r} and {name!r} differ "
                                     f"only in case (expected distinct names).")
        seen[folded] = name


# The manifest -------------------------------------------------------------------------------

def _no_duplicates(pairs):
    result = {}
    for k, v in pairs:
        if k in result:
            raise ValueError(f"duplicate key {k!r}")
        result[k] = v
    return result


def _manifest(data, where):
    """The manifest in `data`, validated whole (nothing is extracted before this)."""
    try:
        manifest = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise SerializationError(f"{where}: {_MANIFEST} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else \
            type(manifest).__name__
        raise SerializationError(f"{where} is not a saved fcore computation (expected format "
                                 f"{FORMAT!r}, found format {found!r}).")
    version = manifest.get("version")
    if type(version) is not int or version != VERSION:
        raise SerializationError(f"{where}: unsupported version {version!r} (this fcore reads "
                                 f"version {VERSION}).")
    if manifest.get("digest") != _digest(manifest):
        raise SerializationError(f"{where}: {_MANIFEST} does not match its digest: the file "
                                 f"was altered.")
    for field in ("ir", "type_signature", "name"):
        if not isinstance(manifest.get(field), str):
            raise SerializationError(f"{where}: malformed manifest (expected a string "
                                     f"{field!r}, found {type(manifest.get(field)).__name__}).")
    leaves = manifest.get("leaves")
    if not isinstance(leaves, dict):
        raise SerializationError(f"{where}: malformed manifest (expected a dict of leaves, "
                                 f"found {type(leaves).__name__}).")
    for leaf, info in leaves.items():
        _check_leaf_entry(leaf, info, where)
    _check_program(manifest, where)
    return manifest


def _check_leaf_entry(leaf, info, where):
    if not _LEAF_NAME.fullmatch(leaf):
        raise SerializationError(f"{where}: unsafe leaf name {leaf!r} in the manifest "
                                 f"(expected letters, digits and '_', not starting with a "
                                 f"digit).")
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict) or \
            not isinstance(info.get("type"), str) or not isinstance(info.get("unrolled", []),
                                                                    list):
        raise SerializationError(f"{where}: malformed manifest entry for leaf {leaf!r} "
                                 f"(expected 'type', 'files' and 'unrolled').")
    if not info["files"]:
        raise SerializationError(f"{where}: the manifest lists no files for leaf {leaf!r}.")
    for relative, digest in info["files"].items():
        _check_relative_path(relative, where)
        if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
            raise SerializationError(f"{where}: malformed hash for leaves/{leaf}/{relative} "
                                     f"(expected 64 lowercase hex digits, found {digest!r}).")
    type_signature = _declared_type(leaf, info, where)
    sequences = sum(isinstance(t, _core().SequenceType) for t in _parameter_leaves(
        type_signature))
    unrolled = info.get("unrolled", [])
    if len(unrolled) > _MAX_UNROLLED:
        raise SerializationError(f"{where}: too many unrolled variants for leaf {leaf!r}.")
    from fcore.tracing.tf_function import MAX_UNROLL
    for lengths in unrolled:
        if not isinstance(lengths, list) or len(lengths) != sequences or not all(
                type(n) is int and 0 <= n <= MAX_UNROLL for n in lengths):
            raise SerializationError(f"{where}: malformed unrolled variant {lengths!r} for "
                                     f"leaf {leaf!r} (expected {sequences} lengths from 0 to "
                                     f"{MAX_UNROLL}).")


def _check_relative_path(relative, where):
    segments = relative.split("/") if isinstance(relative, str) else []
    if not segments or len(relative) > _MAX_PATH_CHARS or len(segments) > _MAX_DEPTH or \
            not all(_PATH_SEGMENT.fullmatch(s) for s in segments):
        raise SerializationError(f"{where}: unsafe path {relative!r} in the manifest (expected "
                                 f"a relative path of plain names: letters, digits, '_', '.', "
                                 f"'-', not starting with '.').")


def _core():
    from fcore.types import core
    return core


def _declared_type(leaf, info, where):
    from fcore.types.conversion import to_type
    try:
        type_signature = to_type(info["type"])
    except (ValueError, TypeError, RecursionError) as e:
        raise SerializationError(f"{where}: the declared type of leaf {leaf!r} is invalid: "
                                 f"{e}") from None
    core = _core()
    valid = isinstance(type_signature, core.FunctionType) and all(
        isinstance(t, (core.TensorType, core.SequenceType))
        for t in _parameter_leaves(type_signature) + _result_leaves(type_signature))
    if not valid:
        raise SerializationError(f"{where}: the declared type of leaf {leaf!r} is "
                                 f"{info['type']} (expected a function on tensors, sequences "
                                 f"and structs of them).")
    return type_signature


def _parameter_leaves(type_signature):
    from fcore.structure import type_leaves
    parameter = type_signature.parameter
    return [] if parameter is None else type_leaves(parameter)


def _result_leaves(type_signature):
    from fcore.structure import type_leaves
    return type_leaves(type_signature.result)


class _Placeholder:
    """A stand-in for a TF leaf, to check the IR and its type before anything is extracted."""

    def __init__(self, name, type_signature):
        self.name, self.type_signature = name, type_signature

    def run(self, value, unroll=False):
        raise SerializationError("a placeholder leaf cannot run")


def _check_program(manifest, where):
    from fcore.types.conversion import to_type
    env = {leaf: _Placeholder(leaf, to_type(info["type"]))
           for leaf, info in manifest["leaves"].items()}
    computation = _parse(manifest, env, where)
    used = set(computation.leaves())
    if used != set(env):
        raise SerializationError(f"{where}: the manifest's leaves {sorted(env)} differ from "
                                 f"those the computation uses {sorted(used)}.")


def _member_digests(manifest):
    """`{member name: SHA-256 hex}` of the leaves' files, from the manifest."""
    return {f"leaves/{leaf}/{relative}": digest
            for leaf, info in manifest["leaves"].items()
            for relative, digest in info["files"].items()}


def _digest(manifest):
    """SHA-256 of the manifest without its digest (catches edits of the text or hashes)."""
    rest = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode("utf-8")).hexdigest()


# Signatures ---------------------------------------------------------------------------------

def _key_bytes(key):
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key)
    else:
        raise TypeError(f"key must be bytes or str, found {type(key).__name__}.")
    if not key:
        raise ValueError("key must not be empty.")
    return key


def _mac(key, manifest_bytes, manifest):
    """HMAC-SHA256 (hex) over a canonical list: the SHA-256 of `manifest.json` as stored and
    of every other member, one `name digest` line each, sorted. (Member names are plain
    names, so the list is unambiguous; each member is checked against its digest as it is
    extracted.)"""
    lines = [f"{_MANIFEST} {hashlib.sha256(manifest_bytes).hexdigest()}"]
    lines += [f"{name} {digest}" for name, digest in _member_digests(manifest).items()]
    message = _SIGNATURE_DOMAIN + "".join(line + "\n" for line in sorted(lines)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _verify_signature(archive, infos, key, manifest_bytes, manifest, where):
    if _SIGNATURE not in infos:
        raise SerializationError(f"{where} is not signed (expected a {_SIGNATURE} member "
                                 f"because a key was given, found none): refusing to load it.")
    data, _ = _read_member(archive, infos[_SIGNATURE], _MAX_SIGNATURE_BYTES, where)
    try:
        signature = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise SerializationError(f"{where}: {_SIGNATURE} is not valid JSON: {e}") from None
    if not isinstance(signature, dict) or signature.get("format") != _SIGNATURE_FORMAT or \
            signature.get("algorithm") != _SIGNATURE_ALGORITHM or \
            not isinstance(signature.get("mac"), str):
        raise SerializationError(f"{where}: malformed {_SIGNATURE} (expected format "
                                 f"{_SIGNATURE_FORMAT!r}, algorithm {_SIGNATURE_ALGORITHM!r} "
                                 f"and a 'mac').")
    expected = _mac(key, manifest_bytes, manifest)
    if not hmac.compare_digest(expected.encode("ascii"),
                               signature["mac"].encode("utf-8", "replace")):
        raise SerializationError(f"{where}: the signature does not verify (the file was "
                                 f"altered, or signed with another key): refusing to load it.")


# TF leaves and the computation --------------------------------------------------------------

def _load_leaf(name, info, directory, where):
    import tensorflow as tf

    from fcore.tracing.tf_function import SavedTFFunction
    from fcore.types.conversion import to_type
    type_signature = to_type(info["type"])
    try:
        restored = tf.saved_model.load(directory)
        function = _checked_function(restored, "function", name, type_signature,
                                     _parameter_leaves(type_signature), where)
        unrolled = {}
        for lengths in info.get("unrolled", []):
            lengths = tuple(lengths)
            inputs = _unrolled_inputs(type_signature, lengths)
            attribute = "unrolled_" + "_".join(str(n) for n in lengths)
            _checked_function(restored, attribute, name, type_signature, inputs, where)
            unrolled[lengths] = getattr(restored, attribute)
        return SavedTFFunction(name, type_signature, function, restored, unrolled)
    except SerializationError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure here means a bad file
        raise SerializationError(f"{where}: the TF computation {name!r} cannot be loaded: "
                                 f"{type(e).__name__}: {e}") from None


def _unrolled_inputs(type_signature, lengths):
    from fcore.structure import type_leaves
    lengths, inputs = list(lengths), []
    for t in _parameter_leaves(type_signature):
        if isinstance(t, _core().SequenceType):
            inputs += type_leaves(t.element) * lengths.pop(0)
        else:
            inputs.append(t)
    return inputs


def _checked_function(restored, attribute, name, type_signature, inputs, where):
    """`restored.<attribute>`, after checking that its one graph takes `inputs` and returns
    the leaves of the declared result type."""
    import tensorflow as tf

    from fcore.types.conversion import to_type
    function = getattr(restored, attribute, None)
    concretes = list(getattr(function, "concrete_functions", None) or [])
    what = f"the TF computation {name!r}" + (f" ({attribute})" if attribute != "function"
                                              else "")
    if len(concretes) != 1:
        raise SerializationError(f"{where}: {what} does not match its declared type "
                                 f"{type_signature}: expected one traced graph, found "
                                 f"{len(concretes)}.")
    concrete = concretes[0]
    args, kwargs = concrete.structured_input_signature
    outputs = concrete.structured_outputs
    if kwargs or not isinstance(outputs, (list, tuple)):
        found_in, found_out = None, None
    else:
        try:
            found_in = [to_type(spec) for spec in args]
            found_out = [to_type(x if isinstance(x, tf.TypeSpec) else
                                 tf.type_spec_from_value(x)) for x in outputs]
        except (TypeError, ValueError):
            found_in, found_out = None, None
    expected_out = _result_leaves(type_signature)
    if found_in is None or [_canonical(t) for t in found_in] != [_canonical(t) for t in inputs] \
            or [_canonical(t) for t in found_out] != [_canonical(t) for t in expected_out]:
        shown = "an unsupported signature" if found_in is None else \
            f"inputs ({', '.join(map(str, found_in))}) and outputs " \
            f"({', '.join(map(str, found_out))})"
        raise SerializationError(
            f"{where}: {what} does not match its declared type {type_signature}: expected "
            f"inputs ({', '.join(map(str, inputs))}) and outputs "
            f"({', '.join(map(str, expected_out))}), found {shown}.")
    return function


def _canonical(type_):
    """A comparable form of a tensor, sequence or struct type, in which the elements of a
    struct whose elements are all named are sorted by name (TF orders dicts so)."""
    core = _core()
    if isinstance(type_, core.TensorType):
        return ("tensor", str(type_.dtype), None if type_.shape is None else tuple(type_.shape))
    if isinstance(type_, core.SequenceType):
        return ("sequence", _canonical(type_.element))
    if isinstance(type_, core.StructType):
        items = [(n, _canonical(t)) for n, t in type_.items()]
        if items and all(n is not None for n, _ in items):
            items.sort()
        return ("struct", tuple(items))
    return ("other", str(type_))


def _parse(manifest, env, where):
    from fcore.syntax.computations import parse_computation
    try:
        computation = parse_computation(manifest["ir"], env, name=manifest.get("name",
                                                                             "loaded"))
    except (ValueError, TypeError, NameError, KeyError, RecursionError) as e:
        raise SerializationError(f"{where}: the computation's text is invalid: {e}") from None
    if str(computation.type_signature) != manifest.get("type_signature"):
        raise SerializationError(f"{where}: the computation's type {computation.type_signature}"
                                 f" differs from the manifest's "
                                 f"{manifest.get('type_signature')}.")
    return computation
