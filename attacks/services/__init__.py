"""The Django shell around attacks.core: each service reads rows, calls the core, stores
what it returns (importing datasets, training and loading recognizers, generating
samples, calibrating budgets, exporting, building reports)."""
