"""The paper's formal model, executable: DSM, top-K DSM, random-features dense baseline, k-NN as a DSM,
the LSH model.

Public names: ``SimHash``, ``PStableHash`` (re-exported from ``sparse_bench.hashing``), ``LSHModel``, ``DSM``,
``TopKDSM``, ``RandomFeaturesDense``, ``knn_as_dsm``, ``ridge_readout``, ``select_ridge``, ``bucket_means``.
"""

from ..hashing import PStableHash, SimHash
from .lsh_model import LSHModel, bucket_means
from .masked import DSM, RandomFeaturesDense, TopKDSM, knn_as_dsm
from .readout import ridge_readout, select_ridge

__all__ = ["SimHash", "PStableHash", "LSHModel", "bucket_means", "DSM", "TopKDSM", "RandomFeaturesDense",
           "knn_as_dsm", "ridge_readout", "select_ridge"]
