"""Shared fixtures for the learning tests: a tiny MNIST federation and model builders."""

import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="session")
def tiny_federation():
    """Three clients of real MNIST digits (by label), two batches of 20 each."""
    from learning.data import ClientData
    clients, test = ClientData.from_mnist(split="by_label", num_clients=10, batch_size=20)
    data = [clients.client_batches(c)[:2] for c in clients.client_ids[:3]]
    return data, test


@pytest.fixture
def keras_model_fn():
    from support import small_model_fn
    return lambda: small_model_fn(units=32)

