"""Tests for the generic learning.data.ClientData (TFF's ClientData), HDF5 client data in TFF's
layout, and the MNIST ClientData API kept as it was."""

import collections

import numpy as np
import pytest

from learning import data
from learning.data import ClientData

tf = pytest.importorskip('tensorflow')
h5py = pytest.importorskip('h5py')


def _write_h5(path, clients):
    """Writes TFF's layout: examples/<client_id>/<feature> for {client_id: {feature: array}}."""
    with h5py.File(path, 'w') as f:
        examples = f.create_group('examples')
        for client_id, features in clients.items():
            group = examples.create_group(client_id)
            for name, values in features.items():
                if isinstance(values, list) and values and isinstance(values[0], str):
                    group.create_dataset(name, data=values, dtype=h5py.string_dtype())
                else:
                    group.create_dataset(name, data=values)
    return path


def _emnist_clients(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return {client_id: {'pixels': rng.random((n, 28, 28), dtype=np.float32),
                        'label': rng.integers(0, 10, n).astype(np.int32)}
            for client_id, n in sizes.items()}


def _elements(dataset):
    return list(dataset.as_numpy_iterator())


@pytest.fixture
def emnist_file(tmp_path):
    clients = _emnist_clients({'f0002_31': 3, 'f0000_14': 5, 'f0001_41': 2})
    return _write_h5(tmp_path / 'emnist.h5', clients), clients


# --- HDF5 files in TFF's layout ----------------------------------------------------------------

def test_h5_emnist_ids_structure_and_values(emnist_file):
    path, clients = emnist_file
    cd = data.load_h5_client_data(path)
    assert isinstance(cd, data.HDF5ClientData) and isinstance(cd, ClientData)
    assert cd.client_ids == ['f0000_14', 'f0001_41', 'f0002_31'] and cd.num_clients == 3
    spec = cd.element_type_structure
    assert isinstance(spec, collections.OrderedDict) and list(spec) == ['label', 'pixels']
    assert spec['label'] == tf.TensorSpec([], tf.int32)
    assert spec['pixels'] == tf.TensorSpec([28, 28], tf.float32)
    assert cd.num_examples('f0000_14') == 5
    for client_id in cd.client_ids:
        dataset = cd.create_tf_dataset_for_client(client_id)
        assert dataset.element_spec == spec
        elements = _elements(dataset)
        assert len(elements) == len(clients[client_id]['label'])
        for i, element in enumerate(elements):
            assert list(element) == ['label', 'pixels']
            assert element['label'] == clients[client_id]['label'][i]
            np.testing.assert_array_equal(element['pixels'], clients[client_id]['pixels'][i])
    assert 'emnist.h5' in repr(cd) and '3 clients' in repr(cd)


def test_h5_strings_as_tf_string(tmp_path):
    path = _write_h5(tmp_path / 'shakespeare.h5', {
        'THE_TEMPEST_MIRANDA': {'snippets': ['O, I have suffered', 'With those that I saw']},
        'HAMLET_HAMLET': {'snippets': ['To be, or not to be']},
        'fixed': {'snippets': np.array([b'abc', b'de'])}})
    cd = data.load_h5_client_data(str(path))
    assert cd.client_ids == ['HAMLET_HAMLET', 'THE_TEMPEST_MIRANDA', 'fixed']
    assert cd.element_type_structure == collections.OrderedDict(
        snippets=tf.TensorSpec([], tf.string))
    assert [e['snippets'] for e in _elements(
        cd.create_tf_dataset_for_client('THE_TEMPEST_MIRANDA'))] == [
        b'O, I have suffered', b'With those that I saw']
    assert [e['snippets'] for e in _elements(cd.create_tf_dataset_for_client('fixed'))] == [
        b'abc', b'de']


def test_h5_reads_lazily_per_client(emnist_file, monkeypatch):
    path, _ = emnist_file
    reads = []
    original = h5py.Dataset.__getitem__

    def recording(self, key):
        reads.append(self.name)
        return original(self, key)
    monkeypatch.setattr(h5py.Dataset, '__getitem__', recording)
    cd = data.load_h5_client_data(path)
    assert cd.client_ids and cd.element_type_structure and reads == []
    assert cd.num_examples('f0002_31') == 3 and reads == []
    cd.create_tf_dataset_for_client('f0001_41')
    assert sorted(reads) == ['/examples/f0001_41/label', '/examples/f0001_41/pixels']


def test_h5_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.h5'):
        data.load_h5_client_data(tmp_path / 'nowhere.h5')
    text = tmp_path / 'notes.h5'
    text.write_text('not hdf5')
    with pytest.raises(ValueError, match='notes.h5.*not an HDF5 file'):
        data.load_h5_client_data(text)


def test_h5_without_examples_group(tmp_path):
    path = tmp_path / 'flat.h5'
    with h5py.File(path, 'w') as f:
        f.create_dataset('pixels', data=np.zeros((2, 28, 28), np.float32))
        f.create_group('clients')
    with pytest.raises(ValueError) as e:
        data.load_h5_client_data(path)
    message = str(e.value)
    assert 'flat.h5' in message and "'examples'" in message
    assert "found top-level keys ['clients', 'pixels']" in message
    with h5py.File(path, 'a') as f:
        f.create_group('examples')
    with pytest.raises(ValueError, match="flat.h5.*at least one client.*found none"):
        data.load_h5_client_data(path)


def test_h5_features_of_different_lengths(tmp_path):
    clients = _emnist_clients({'a': 2, 'b': 3})
    clients['b']['label'] = clients['b']['label'][:2]
    path = _write_h5(tmp_path / 'bad.h5', clients)
    cd = data.load_h5_client_data(path)  # only the first client is checked when loading
    with pytest.raises(ValueError) as e:
        cd.create_tf_dataset_for_client('b')
    message = str(e.value)
    assert 'bad.h5' in message and 'examples/b' in message
    assert 'same number of examples' in message and "{'label': 2, 'pixels': 3}" in message
    path = _write_h5(tmp_path / 'first.h5', {'a': clients['b']})
    with pytest.raises(ValueError, match="first.h5: examples/a.*'label': 2, 'pixels': 3"):
        data.load_h5_client_data(path)


def test_h5_client_unlike_the_first(tmp_path):
    clients = _emnist_clients({'a': 2, 'b': 2})
    clients['b']['label'] = clients['b']['label'].astype(np.float64)
    clients['b']['extra'] = np.zeros(2)
    cd = data.load_h5_client_data(_write_h5(tmp_path / 'mixed.h5', clients))
    with pytest.raises(ValueError) as e:
        cd.create_tf_dataset_for_client('b')
    message = str(e.value)
    assert 'mixed.h5' in message and 'examples/b' in message
    assert 'expected features {label: int32[], pixels: float32[28, 28]}' in message
    assert 'found {extra: float64[], label: float64[], pixels: float32[28, 28]}' in message


def test_h5_unknown_client(emnist_file):
    cd = data.load_h5_client_data(emnist_file[0])
    with pytest.raises(KeyError, match="'nobody'.*f0000_14, f0001_41, f0002_31"):
        cd.create_tf_dataset_for_client('nobody')
    with pytest.raises(KeyError, match='nobody'):
        cd.num_examples('nobody')


def test_emnist_preprocess_makes_mnist_batches(emnist_file):
    path, clients = emnist_file
    cd = data.load_h5_client_data(path).preprocess(data.emnist_preprocess(batch_size=2))
    mnist_spec = collections.OrderedDict(x=tf.TensorSpec([None, 784], tf.float32),
                                         y=tf.TensorSpec([None], tf.int32))
    assert cd.element_type_structure == mnist_spec
    batches = _elements(cd.create_tf_dataset_for_client('f0000_14'))
    assert [len(b['y']) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b['x'] for b in batches]),
                                  clients['f0000_14']['pixels'].reshape(5, 784))
    np.testing.assert_array_equal(np.concatenate([b['y'] for b in batches]),
                                  clients['f0000_14']['label'])
    square = data.load_h5_client_data(path).preprocess(
        data.emnist_preprocess(batch_size=4, flatten=False, num_epochs=2, shuffle_buffer=10,
                               seed=1))
    assert square.element_type_structure['x'] == tf.TensorSpec([None, 28, 28], tf.float32)
    assert sum(len(b['y']) for b in square.create_tf_dataset_for_client('f0001_41')) == 4
    with pytest.raises(ValueError, match='batch_size'):
        data.emnist_preprocess(batch_size=0)
    tokens = ClientData.from_tensor_slices({'a': np.zeros((2, 3), np.int32)})
    with pytest.raises(ValueError, match="'pixels' and 'label'"):
        tokens.preprocess(data.emnist_preprocess())


# --- from_tensor_slices -------------------------------------------------------------------------

def test_from_tensor_slices_images():
    rng = np.random.default_rng(0)
    slices = {name: collections.OrderedDict(
        image=rng.integers(0, 256, (n, 8, 8, 3)).astype(np.uint8),
        label=np.arange(n, dtype=np.int64)) for name, n in (('zed', 4), ('amy', 2))}
    cd = ClientData.from_tensor_slices(slices)
    assert cd.client_ids == ['zed', 'amy']  # dict order, as TFF's TestClientData
    assert cd.element_type_structure == collections.OrderedDict(
        image=tf.TensorSpec([8, 8, 3], tf.uint8), label=tf.TensorSpec([], tf.int64))
    assert cd.num_examples('zed') == 4
    elements = _elements(cd.create_tf_dataset_for_client('amy'))
    assert len(elements) == 2
    np.testing.assert_array_equal(elements[1]['image'], slices['amy']['image'][1])
    with pytest.raises(KeyError, match="'bob'.*zed, amy"):
        cd.create_tf_dataset_for_client('bob')


def test_from_tensor_slices_token_ids_tuples_and_lists():
    tokens = ClientData.from_tensor_slices({'a': np.arange(12, dtype=np.int32).reshape(4, 3),
                                            'b': np.zeros((1, 3), np.int32)})
    assert tokens.element_type_structure == tf.TensorSpec([3], tf.int32)
    assert [list(e) for e in _elements(tokens.create_tf_dataset_for_client('a'))][1] == [3, 4, 5]
    pairs = ClientData.from_tensor_slices({'a': ([[1, 2], [3, 4]], ['x', 'y']),
                                           'b': ([[5, 6]], ['z'])})
    assert pairs.element_type_structure == (tf.TensorSpec([2], tf.int32),
                                            tf.TensorSpec([], tf.string))
    assert [(list(t), s) for t, s in _elements(pairs.create_tf_dataset_for_client('b'))] == [
        ([5, 6], b'z')]
    nested = ClientData.from_tensor_slices(
        {'a': {'features': {'tokens': np.ones((2, 5), np.int64)}, 'weight': [0.5, 1.0]}})
    assert nested.element_type_structure == {
        'features': {'tokens': tf.TensorSpec([5], tf.int64)},
        'weight': tf.TensorSpec([], tf.float32)}


def test_from_tensor_slices_errors():
    with pytest.raises(ValueError, match="client 'b'.*differ from client 'a'"):
        ClientData.from_tensor_slices({'a': np.zeros((2, 3), np.int32),
                                       'b': np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match="client 'a'.*same number of examples.*'x': 2, 'y': 3"):
        ClientData.from_tensor_slices({'a': {'x': np.zeros(2), 'y': np.zeros(3)}})
    with pytest.raises(ValueError, match='not a rectangular array'):
        ClientData.from_tensor_slices({'a': [[1, 2], [3]]})
    with pytest.raises(ValueError, match='scalar'):
        ClientData.from_tensor_slices({'a': np.float32(1.0)})
    with pytest.raises(TypeError, match='strings'):
        ClientData.from_tensor_slices({1: np.zeros(2)})
    with pytest.raises(ValueError, match='at least one client'):
        ClientData.from_tensor_slices({})
    with pytest.raises(TypeError, match='dict'):
        ClientData.from_tensor_slices([np.zeros(2)])


# --- preprocess, datasets, from_clients_and_tf_fn, splits, all clients -------------------------

@pytest.fixture
def counting():
    """Five clients c0..c4; client ck holds the examples 10k, 10k+1, ..., 10k+k (k+1 of them)."""
    return ClientData.from_tensor_slices(
        {f'c{k}': np.arange(10 * k, 10 * k + k + 1, dtype=np.int32) for k in range(5)})


def test_preprocess(counting):
    batched = counting.preprocess(lambda ds: ds.map(lambda x: x * 2).batch(2))
    assert batched.client_ids == counting.client_ids
    assert batched.element_type_structure == tf.TensorSpec([None], tf.int32)
    assert counting.element_type_structure == tf.TensorSpec([], tf.int32)
    assert [list(b) for b in _elements(batched.create_tf_dataset_for_client('c2'))] == [
        [40, 42], [44]]
    with pytest.raises(KeyError, match='c9'):
        batched.create_tf_dataset_for_client('c9')
    with pytest.raises(TypeError, match='callable'):
        counting.preprocess(3)
    with pytest.raises(TypeError, match="tf.data.Dataset, got list for client 'c0'"):
        counting.preprocess(lambda ds: list(ds))


def test_datasets_order_limit_and_seed(counting):
    firsts = [int(next(iter(ds))) for ds in counting.datasets()]
    assert firsts == [0, 10, 20, 30, 40]
    assert len(list(counting.datasets(limit_count=2))) == 2
    shuffled = [int(next(iter(ds))) // 10 for ds in counting.datasets(seed=3)]
    expected = list(range(5))
    np.random.RandomState(3).shuffle(expected)
    assert shuffled == expected
    assert shuffled == [int(next(iter(ds))) // 10 for ds in counting.datasets(seed=3)]
    with pytest.raises(TypeError, match='seed'):
        list(counting.datasets(seed=-1))
    with pytest.raises(ValueError, match='limit_count'):
        counting.datasets(limit_count=-1)


def test_from_clients_and_tf_fn():
    def dataset_fn(client_id):
        return tf.data.Dataset.range(int(client_id[1:])).map(lambda x: {'x': x})
    cd = ClientData.from_clients_and_tf_fn(['n3', 'n1', 'n2'], dataset_fn)
    assert cd.client_ids == ['n3', 'n1', 'n2']
    assert cd.element_type_structure == {'x': tf.TensorSpec([], tf.int64)}
    assert [e['x'] for e in _elements(cd.create_tf_dataset_for_client('n2'))] == [0, 1]
    with pytest.raises(KeyError, match="'n4'"):
        cd.create_tf_dataset_for_client('n4')
    with pytest.raises(ValueError, match='at least one client'):
        ClientData.from_clients_and_tf_fn([], dataset_fn)
    with pytest.raises(ValueError, match='distinct.*n1'):
        ClientData.from_clients_and_tf_fn(['n1', 'n1'], dataset_fn)
    with pytest.raises(TypeError, match='serializable_dataset_fn must return'):
        ClientData.from_clients_and_tf_fn(['n1'], lambda c: [1])


def test_train_test_client_split(counting):
    train, test = ClientData.train_test_client_split(counting, 2, seed=7)
    again = ClientData.train_test_client_split(counting, 2, seed=7)
    assert (train.client_ids, test.client_ids) == (again[0].client_ids, again[1].client_ids)
    assert len(test.client_ids) == 2 and len(train.client_ids) == 3
    assert sorted(train.client_ids + test.client_ids) == counting.client_ids
    assert train.client_ids == [c for c in counting.client_ids if c in train.client_ids]
    shuffled = counting.client_ids
    np.random.RandomState(7).shuffle(shuffled)
    assert set(test.client_ids) == set(shuffled[-2:])  # TFF's pick for the seed
    assert test.element_type_structure == counting.element_type_structure
    client = test.client_ids[0]
    np.testing.assert_array_equal(_elements(test.create_tf_dataset_for_client(client)),
                                  _elements(counting.create_tf_dataset_for_client(client)))
    with pytest.raises(KeyError):
        test.create_tf_dataset_for_client(train.client_ids[0])
    others = {ClientData.train_test_client_split(counting, 2, seed=s)[1].client_ids[0]
              for s in range(10)}
    assert len(others) > 1
    with pytest.raises(ValueError, match='only 5 clients, but 5 test clients'):
        ClientData.train_test_client_split(counting, 5)
    with pytest.raises(ValueError, match='num_test_clients'):
        ClientData.train_test_client_split(counting, 0)


def test_train_test_client_split_skips_empty_clients():
    sizes = {'e0': 0, 'e1': 0, 'full0': 2, 'e2': 0, 'full1': 1}
    cd = ClientData.from_clients_and_tf_fn(
        list(sizes), lambda c: tf.data.Dataset.range(sizes[c]))
    for seed in range(5):
        train, test = ClientData.train_test_client_split(cd, 1, seed=seed)
        assert test.client_ids[0].startswith('full') and len(train.client_ids) == 4
    with pytest.raises(ValueError, match='too many clients with no data'):
        ClientData.train_test_client_split(cd, 3, seed=0)


def test_create_tf_dataset_from_all_clients(counting, emnist_file):
    everything = counting.create_tf_dataset_from_all_clients()
    assert everything.element_spec == counting.element_type_structure
    assert [int(x) for x in everything] == [0, 10, 11, 20, 21, 22, 30, 31, 32, 33,
                                            40, 41, 42, 43, 44]
    seeded = [int(x) for x in counting.create_tf_dataset_from_all_clients(seed=3)]
    order = list(range(5))
    np.random.RandomState(3).shuffle(order)
    assert seeded == [10 * k + i for k in order for i in range(k + 1)]
    path, clients = emnist_file
    h5 = data.load_h5_client_data(path)
    labels = [int(e['label']) for e in h5.create_tf_dataset_from_all_clients()]
    assert labels == [int(v) for c in h5.client_ids for v in clients[c]['label']]


def test_client_data_is_abstract():
    with pytest.raises(TypeError, match='abstract'):
        ClientData()


# --- the MNIST ClientData, unchanged ------------------------------------------------------------

def test_mnist_constructor_and_from_mnist_unchanged():
    images = np.arange(12 * 784, dtype=np.float32).reshape(12, 784) % 256
    labels = np.arange(12) % 10
    partition = [[k] for k in range(12)]
    cd = ClientData(images, labels, partition, batch_size=5)
    assert type(cd) is data.MnistClientData and isinstance(cd, ClientData)
    assert cd.client_ids == [f'client_{k}' for k in range(12)]  # partition order, not sorted
    assert cd.batch_size == 5 and cd.num_examples('client_11') == 1
    assert cd.element_type_structure == cd.element_spec
    batch = cd.client_batches('client_3')[0]
    np.testing.assert_array_equal(batch['x'], images[3:4] / 255.0)
    assert batch['y'].tolist() == [3] and batch['y'].dtype == np.int32
    clients, (test_x, test_y) = ClientData.from_mnist('iid', num_clients=4, batch_size=50)
    assert type(clients) is data.MnistClientData and len(test_y) == 1000
    assert clients.num_clients == 4
    assert sum(clients.num_examples(c) for c in clients.client_ids) == 4000
    direct, _ = data.MnistClientData.from_mnist('iid', num_clients=4, batch_size=50)
    first = clients.client_batches('client_0')[0]
    np.testing.assert_array_equal(first['x'], direct.client_batches('client_0')[0]['x'])
    dataset = clients.create_tf_dataset_for_client('client_2')
    assert dataset.element_spec == clients.element_spec
    assert [len(b['y']) for b in dataset.as_numpy_iterator()][0] == 50


def test_mnist_client_data_works_with_the_generic_api():
    clients, _ = ClientData.from_mnist('by_label', num_clients=10, batch_size=100)
    examples = clients.preprocess(lambda ds: ds.unbatch())
    assert examples.element_type_structure == collections.OrderedDict(
        x=tf.TensorSpec([784], tf.float32), y=tf.TensorSpec([], tf.int32))
    assert {int(e['y']) for e in examples.create_tf_dataset_for_client('client_4')} == {4}
    train, test = ClientData.train_test_client_split(clients, 2, seed=0)
    assert len(train.client_ids) == 8 and test.element_type_structure == clients.element_spec
    assert len(list(clients.datasets(limit_count=3))) == 3
