"""Expert-parallel checks: the communication volume of the all-to-all dispatch under random routing."""
