# Thread control for the compiled kernels' OpenMP loops.
cdef extern from "kernels.h" nogil:
    int omp_get_max_threads()
    void omp_set_num_threads(int n)
    const int FNN_OPENMP


def openmp_enabled():
    """True when the kernels were built with OpenMP (otherwise they always run on one thread)."""
    return bool(FNN_OPENMP)


def set_num_threads(int n):
    """Threads used by the kernels' parallel loops (OpenMP); small arrays always use one."""
    omp_set_num_threads(n)


def get_num_threads():
    return omp_get_max_threads()
