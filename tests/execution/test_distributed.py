"""The Dask executor on a real 2-worker LocalCluster: same results as the reference, data
placed once, programs cached by hash, worker loss survived, unreachable schedulers."""

import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

import fcore
import learning
from fcore import CLIENTS, FederatedType
from fcore.execution import distributed as fdist

from support import assert_close, local_cluster, random_client_data, small_model_fn

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    yield from local_cluster()


def test_fedavg_rounds_match_the_reference(client):
    process = learning.build_federated_averaging_process(small_model_fn)
    data = random_client_data(12)
    state = process.initialize()
    with fcore.execution_context("reference"):
        expected_state, expected_metrics = process.next(state, data)
    with fcore.execution_context(dask=client):
        found_state, found_metrics = process.next(state, data)
    assert_close(expected_state, found_state)
    assert_close(expected_metrics, found_metrics)
    assert fdist.last_report["chunks"] > 1 and fdist.last_report["dropped_clients"] == 0


def test_the_round_report_counts_the_clients_that_ran_on_workers(client):
    process = learning.build_federated_averaging_process(small_model_fn)
    data = random_client_data(9, seed=3) + [[]]  # and an empty client
    with fcore.execution_context(dask=client), pytest.warns(RuntimeWarning, match="1 of 10"):
        process.next(process.initialize(), data)
    assert process.next.last_report == learning.RoundReport(clients=10, empty=1, non_finite=0)


def test_data_is_placed_once_and_programs_are_cached_by_hash(client):
    process = learning.build_federated_averaging_process(small_model_fn)
    data = random_client_data(8, seed=1)
    state = process.initialize()
    with fcore.execution_context(dask=client):
        process.next(state, data)
        placed = len(fdist._placed_data[client])
        programs = client.run(lambda: sorted(
            __import__("fcore.execution.distributed", fromlist=["_"])._worker_programs))
        process.next(state, data)
        assert len(fdist._placed_data[client]) == placed  # the same chunks, not re-sent
    digests = {d for ds in programs.values() for d in ds}
    assert digests and all(len(d) == 64 for d in digests)


def test_the_language_programs_with_tf_leaves_match(client):
    @fcore.tf_computation(np.float32)
    def square(v):
        return v * v

    @fcore.federated_computation(FederatedType(np.float32, CLIENTS))
    def stats(x):
        squares = fcore.federated_map(square, x)
        return (fcore.federated_sum(squares), fcore.federated_max(squares),
                fcore.federated_mean(squares), squares)

    values = [float(v) for v in range(1, 30)]
    with fcore.execution_context("reference"):
        expected = stats(values)
    with fcore.execution_context(dask=client):
        found = stats(values)
    assert_close(expected, found)


@fcore.tf_computation(np.float32)
def slow_square(v):
    m = tf.eye(200) * 0.5

    def body(i, acc):
        return i + 1, tf.matmul(acc, m) + tf.eye(200)
    _, acc = tf.while_loop(lambda i, _: i < 300, body, (tf.constant(0), tf.eye(200)))
    return v * v + 0.0 * tf.reduce_sum(acc)


@fcore.federated_computation(FederatedType(np.float32, CLIENTS))
def sum_of_slow_squares(x):
    return fcore.federated_sum(fcore.federated_map(slow_square, x))


def test_a_worker_killed_during_a_round_is_survived(client, monkeypatch):
    monkeypatch.setattr(fdist, "CHUNKS_PER_WORKER", 4)  # chunks wait while others run
    values = [float(v) for v in range(40)]
    expected = float(sum(v * v for v in values))
    killed = []
    pids = client.run(os.getpid)

    def kill_a_worker(done, total):
        if not killed:  # after the first chunk, while the others run or wait
            worker, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(worker)

    with fcore.execution_context(dask=client, progress=kill_a_worker):
        result = sum_of_slow_squares(values)
    assert killed
    assert result == pytest.approx(expected)
    assert fdist.last_report["retried"] >= 1  # chunks of the dead worker ran again
    assert fdist.last_report["dropped_clients"] == 0
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_a_round_survives_losing_every_worker_and_the_program_they_held(monkeypatch):
    monkeypatch.setattr(fdist, "CHUNKS_PER_WORKER", 4)
    values = [float(v) for v in range(40)]
    killed = []
    cluster = local_cluster()  # its own: the nannies restart workers only so many times
    own = next(cluster)
    try:
        pids = own.run(os.getpid)

        def kill_every_worker(done, total):
            if not killed:  # the nannies restart them; program and data are placed again
                for pid in pids.values():
                    os.kill(pid, signal.SIGKILL)
                killed.append(True)

        with fcore.execution_context(dask=own, progress=kill_every_worker):
            result = sum_of_slow_squares(values)
    finally:
        next(cluster, None)  # closes the client and the cluster
    assert killed
    assert result == pytest.approx(float(sum(v * v for v in values)))
    assert fdist.last_report["retried"] >= 1 and fdist.last_report["dropped_clients"] == 0


def test_an_unreachable_scheduler_fails_within_the_timeout(monkeypatch):
    monkeypatch.setattr(fdist, "CONNECT_TIMEOUT", 2)
    comp = fcore.parse_computation("(x:{float32}@CLIENTS -> federated_sum(x))")
    start = time.monotonic()
    with pytest.raises(fdist.DistributedExecutionError, match="Cannot reach the Dask scheduler") \
            as info:
        with fcore.execution_context(dask="tcp://127.0.0.1:1"):
            comp([1.0])
    assert time.monotonic() - start < 30
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, fcore.ExecutionError)


def test_dask_needs_an_address_or_client():
    with pytest.raises(ValueError, match="needs dask="):
        with fcore.execution_context("dask"):
            pass
