"""Privacy accounting for DP-FedAvg with Google's `dp-accounting` package: the Gaussian
mechanism on a Poisson-sampled fraction of the clients each round, composed over the rounds
with Rényi DP (Mironov 2017; Mironov, Talwar and Zhang 2019)."""

from __future__ import annotations

import logging
import math


def compute_epsilon(noise_multiplier, clients_per_round, total_clients, rounds, delta):
    """The epsilon of (epsilon, delta)-DP at the client level after `rounds` rounds of the
    Gaussian mechanism with `noise_multiplier`, each round sampling clients independently with
    probability `clients_per_round / total_clients` (RDP accountant). `noise_multiplier=0`
    gives infinity; `rounds=0` gives 0."""
    from dp_accounting import dp_event, rdp

    noise = float(noise_multiplier)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"compute_epsilon: noise_multiplier must be >= 0, found "
                         f"{noise_multiplier!r}.")
    if int(total_clients) < 1 or not 0 < int(clients_per_round) <= int(total_clients):
        raise ValueError(f"compute_epsilon: need 0 < clients_per_round <= total_clients, "
                         f"found {clients_per_round} and {total_clients}.")
    if int(rounds) < 0 or int(rounds) != rounds:
        raise ValueError(f"compute_epsilon: rounds must be an integer >= 0, found {rounds!r}.")
    if not 0 < float(delta) < 1:
        raise ValueError(f"compute_epsilon: delta must lie in (0, 1), found {delta!r}.")
    if int(rounds) == 0:
        return 0.0
    if noise == 0:
        return math.inf
    rate = int(clients_per_round) / int(total_clients)
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise)), int(rounds))
    accountant = rdp.RdpAccountant()  # its default orders, fractional ones included
    logger = logging.getLogger("absl")  # a fractional order that does not converge is left
    level = logger.level                # out with a warning per order: keep them quiet
    logger.setLevel(logging.ERROR)
    try:
        accountant.compose(event)
        return float(accountant.get_epsilon(float(delta)))
    finally:
        logger.setLevel(level)
