"""Differential privacy for bounty tasks (issue 14): the accountant, the claim check and the keyed seeds.

The public API, kept small for the daemon, the validator and the CLI:

* `epsilon_spent`, `noise_multiplier_for`: Opacus's RDP/PRV accountants, no training needed;
* `DpTerms` (the spec's terms), `DpClaim` (the signed claim), both in chain units, `honest_claim` and
  `check_claim` (the reasons a claim is wrong; validators reject on any);
* `noise_key_hash`, `noise_seed`, `sample_seed`: the per-step seeds only the data's readers can compute.

The training side (Opacus's per-sample clipping and noise inside `workers.engine.run_loop`) lives in
`workers.privacy.training`, imported by the engine only for a DP spec.
"""
from workers.privacy.accounting import (
    ACCOUNTANTS,
    CLAIM_TOLERANCE,
    DpClaim,
    DpTerms,
    PrivacyError,
    UnsupportedAccountantError,
    chain_spec_mismatches,
    check_claim,
    epsilon_spent,
    honest_claim,
    noise_multiplier_for,
    sample_rate_of,
    steps_for,
)
from workers.privacy.seeds import noise_key_hash, noise_seed, sample_seed

__all__ = ["ACCOUNTANTS", "CLAIM_TOLERANCE", "DpClaim", "DpTerms", "PrivacyError", "UnsupportedAccountantError",
           "chain_spec_mismatches", "check_claim", "epsilon_spent", "honest_claim", "noise_key_hash",
           "noise_multiplier_for", "noise_seed", "sample_rate_of", "sample_seed", "steps_for"]
