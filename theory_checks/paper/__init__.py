"""Checks of the paper's claims (docs/THEORY.md §A): collision laws, bucket geometry, approximation error,
cost per input, the dense baseline, k-NN as a DSM and the shape of Table 1."""
