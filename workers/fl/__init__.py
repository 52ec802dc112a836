"""Federated learning on chain (issue 13): Flower runs the rounds, the FederatedTasks pallet pays and slashes.

The pure pieces (`arrays`, `spec`, `rules`, `verify`, `model`) import numpy and torch only, so that a validator
checks a round without Flower, gRPC or a chain; the Flower-facing pieces (strategy, server and client apps,
attacks) and the daemons build on them. docs/design/federated.md is the design.
"""
