"""Checks of the implementation against the paper's mathematics (docs/THEORY.md §A): collision laws, Cover's
count, bucket counts and coverage, the bucket-constant error bound, locality-free routing, cost per input, and
k-NN, Switch, hash layers and the LSH model as DSMs. The paper's published claims are findings."""
