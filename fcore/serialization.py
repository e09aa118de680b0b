"""Saving a computation to one file and loading it in another process, without pickle.

The file is a zip archive: `manifest.json` (format, version, the IR text, the type
signature, and for each TF leaf its type and the SHA-256 of each of its files) and, per leaf,
a TensorFlow SavedModel (graphs and variable values as protocol buffers). Loading checks the
format, the manifest's digest, every path and every file's hash before TensorFlow reads
anything, and SavedModels hold no Python code, so a tampered or foreign file fails with
`fcore.SerializationError` instead of running anything. (The digests detect alteration; they
are not a signature: someone who rewrites the whole file consistently makes a new, valid
file, which can still only do what fcore IR and TF graphs can do.)"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tempfile
import zipfile

FORMAT = "fcore-computation"
VERSION = 1
_MANIFEST = "manifest.json"


class SerializationError(ValueError):
    """A file that is not a valid saved fcore computation."""


def save(computation, path):
    """Writes `computation` (with its TF leaves) to the file `path`."""
    data = to_bytes(computation)  # first: a failure leaves no file behind
    with open(path, "wb") as f:
        f.write(data)


def to_bytes(computation) -> bytes:
    """The saved form of `computation`, as bytes."""
    from fcore.computation import Computation
    if not isinstance(computation, Computation):
        kind = "a polymorphic computation: call it or give it parameter types first" \
            if hasattr(computation, "instantiate") else type(computation).__name__
        raise TypeError(f"fcore.save takes an fcore computation, found {kind}.")
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
                    data = open(full, "rb").read()
                    files[f"leaves/{name}/{relative}"] = data
                    hashes[relative] = hashlib.sha256(data).hexdigest()
            manifest_leaves[name] = {"type": str(leaf.type_signature), "files": hashes,
                                     "unrolled": sorted(list(k) for k in unrolled)}
    manifest = {"format": FORMAT, "version": VERSION, "name": computation.name,
                "type_signature": str(computation.type_signature),
                "ir": computation.to_text(formatted=False), "leaves": manifest_leaves}
    manifest["digest"] = _digest(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return buffer.getvalue()


def load(path):
    """Reads a computation saved by `fcore.save`; returns a callable `fcore.Computation`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SerializationError(f"Cannot read {path}: {e}") from None
    return from_bytes(data, where=str(path))


def from_bytes(data: bytes, where="<bytes>"):
    """The computation saved in `data` (see `load`)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise SerializationError(f"{where} is not a saved fcore computation (not a zip "
                                 f"archive: {e}).") from None
    with archive:
        manifest = _manifest(archive, names, where)
        expected = {_MANIFEST} | {f"leaves/{leaf}/{relative}"
                                  for leaf, info in manifest["leaves"].items()
                                  for relative in info["files"]}
        if names != expected:
            extra = sorted(names - expected)[:3]
            missing = sorted(expected - names)[:3]
            raise SerializationError(f"{where}: the archive's files do not match its manifest "
                                     f"(unexpected {extra}, missing {missing}).")
        with tempfile.TemporaryDirectory() as tmp:
            env = {}
            for leaf, info in manifest["leaves"].items():
                directory = os.path.join(tmp, leaf)
                for relative, digest in info["files"].items():
                    content = archive.read(f"leaves/{leaf}/{relative}")
                    if hashlib.sha256(content).hexdigest() != digest:
                        raise SerializationError(f"{where}: leaves/{leaf}/{relative} does not "
                                                 f"match its hash: the file was altered.")
                    target = os.path.join(directory, *relative.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as out:
                        out.write(content)
                env[leaf] = _load_leaf(leaf, info, directory, where)
            return _build(manifest, env, where)


def _manifest(archive, names, where):
    if _MANIFEST not in names:
        raise SerializationError(f"{where} is not a saved fcore computation (no {_MANIFEST}).")
    try:
        manifest = json.loads(archive.read(_MANIFEST).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SerializationError(f"{where}: {_MANIFEST} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise SerializationError(f"{where} is not a saved fcore computation (format "
                                 f"{found!r}).")
    if manifest.get("version") != VERSION:
        raise SerializationError(f"{where}: unsupported version {manifest.get('version')!r} "
                                 f"(this fcore reads version {VERSION}).")
    if manifest.get("digest") != _digest(manifest):
        raise SerializationError(f"{where}: {_MANIFEST} does not match its digest: the file "
                                 f"was altered.")
    leaves = manifest.get("leaves")
    if not isinstance(leaves, dict) or not all(isinstance(k, str) for k in leaves) or \
            not isinstance(manifest.get("ir"), str):
        raise SerializationError(f"{where}: malformed manifest.")
    for leaf, info in leaves.items():
        if not leaf.replace("_", "a").replace("/", "a").isalnum() or not isinstance(
                info, dict) or not isinstance(info.get("files"), dict):
            raise SerializationError(f"{where}: malformed manifest entry for leaf {leaf!r}.")
        for relative in info["files"]:
            normal = posixpath.normpath(relative)
            if normal != relative or normal.startswith(("/", "..")) or "\\" in relative:
                raise SerializationError(f"{where}: unsafe path {relative!r} in the manifest.")
    return manifest


def _digest(manifest):
    """SHA-256 of the manifest without its digest (catches edits of the text or hashes)."""
    rest = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode("utf-8")).hexdigest()


def _load_leaf(name, info, directory, where):
    import tensorflow as tf

    from fcore.tracing.tf_function import SavedTFFunction
    from fcore.types.conversion import to_type
    try:
        type_signature = to_type(info["type"])
        restored = tf.saved_model.load(directory)
        unrolled = {}
        for lengths in info.get("unrolled", []):
            function = getattr(restored, "unrolled_" + "_".join(str(int(n)) for n in lengths))
            unrolled[tuple(int(n) for n in lengths)] = function
        return SavedTFFunction(name, type_signature, restored.function, restored, unrolled)
    except Exception as e:  # noqa: BLE001 - any failure here means a bad file
        raise SerializationError(f"{where}: the TF computation {name!r} cannot be loaded: "
                                 f"{type(e).__name__}: {e}") from None


def _build(manifest, env, where):
    from fcore.syntax.computations import parse_computation
    from fcore.types.errors import TypeParseError
    try:
        computation = parse_computation(manifest["ir"], env, name=manifest.get("name",
                                                                             "loaded"))
    except (TypeParseError, TypeError) as e:
        raise SerializationError(f"{where}: the computation's text is invalid: {e}") from None
    if str(computation.type_signature) != manifest.get("type_signature"):
        raise SerializationError(f"{where}: the computation's type {computation.type_signature}"
                                 f" differs from the manifest's "
                                 f"{manifest.get('type_signature')}.")
    return computation
