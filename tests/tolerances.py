"""How closely two results must agree, by where they come from (see the note at the top of conftest.py)."""

# After a save/load (or in another process), the stored tensors are identical but the arithmetic on them may round
# differently: freshly loaded tensors can sit at other memory alignments, which changes the SIMD paths of
# BLAS/convolution kernels (seen: a relative 2.7e-6 on a 2-core AMD EPYC with OpenBLAS core type Haswell).
AFTER_RELOAD = {"rtol": 1e-5, "atol": 1e-6}
