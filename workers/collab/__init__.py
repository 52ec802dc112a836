"""Clients of the CollaborativeModels pallet: DeCAI's agents and its experiment, reproduced on devnet."""
