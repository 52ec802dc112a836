"""The parts of the local market harness; `paratrain.local` is its public face (import from there)."""
