"""Convolution and pooling checks (docs/THEORY.md §B): exact identities of convolution, pooling as routing,
order statistics, detection, shift invariance, and a CNN whose penultimate layer is a top-K DSM."""
