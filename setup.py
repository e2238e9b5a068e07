"""Build the compiled kernels in src/fastnn/_kernels/*.pyx.

Environment switches (all optional):
  FASTNN_DEBUG=1       bounds checks and wraparound on, -O0 -g: for hunting a crash in a kernel.
  FASTNN_NATIVE=0      do not tune for the building machine (-march=native); for portable wheels.
  FASTNN_OPENMP=0      build serially even when the compiler supports OpenMP.
"""
import os
import sys
import tempfile
import textwrap
from glob import glob

from setuptools import Extension, setup
from setuptools._distutils.ccompiler import new_compiler
from setuptools._distutils.errors import CompileError, LinkError
from setuptools._distutils.sysconfig import customize_compiler

KERNEL_DIR = os.path.join("src", "fastnn", "_kernels")


def _flag(name, default):
    return os.environ.get(name, default).strip().lower() not in ("0", "false", "no", "off", "")


def _compiler_accepts(compile_args, link_args=(), code="int main(void) { return 0; }\n"):
    """True when the C compiler compiles and links `code` with these flags."""
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            objects = compiler.compile([src], output_dir=tmp, extra_postargs=list(compile_args))
            compiler.link_executable(objects, os.path.join(tmp, "probe"),
                                     extra_postargs=list(link_args))
        except (CompileError, LinkError, OSError):
            return False
    return True


OPENMP_PROBE = textwrap.dedent("""
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
""")


def build_flags():
    debug = _flag("FASTNN_DEBUG", "0")
    # -fno-math-errno: sqrt() and friends never set errno here, which lets loops calling them
    # vectorize; nothing in fastnn reads errno. -fno-trapping-math: nothing reads the floating-
    # point exception flags either, so GCC may compute both arms of a select (leaky_relu's
    # alpha * v, sigmoid's e * s) and blend them; without it, on AVX2 (no masked lanes) those
    # loops stay scalar and branchy, 10-30x slower on mixed-sign data. Results are unchanged.
    compile_args = ["-O0", "-g"] if debug else ["-O3", "-fno-math-errno", "-fno-trapping-math"]
    link_args = []
    if sys.platform == "win32":
        return debug, ["/O2"], [], ["/openmp"]
    if _flag("FASTNN_NATIVE", "1") and _compiler_accepts(["-march=native"]):
        compile_args.append("-march=native")
    openmp = []
    if _flag("FASTNN_OPENMP", "1"):
        if _compiler_accepts(["-fopenmp"], ["-fopenmp"], OPENMP_PROBE):
            openmp = ["-fopenmp"]
        else:
            print("WARNING: the C compiler does not support OpenMP; fastnn's kernels are built "
                  "serially (one thread).", file=sys.stderr)
    return debug, compile_args, link_args, openmp


def extensions():
    import numpy
    from Cython.Build import cythonize

    debug, compile_args, link_args, openmp = build_flags()
    modules = []
    for pyx in sorted(glob(os.path.join(KERNEL_DIR, "*.pyx"))):
        name = "fastnn._kernels." + os.path.splitext(os.path.basename(pyx))[0]
        modules.append(Extension(
            name, [pyx],
            include_dirs=[KERNEL_DIR, numpy.get_include()],
            extra_compile_args=compile_args + openmp,
            extra_link_args=link_args + openmp,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": True,
    }
    return cythonize(modules, compiler_directives=directives,
                     nthreads=os.cpu_count() or 1, quiet=True)


setup(ext_modules=extensions())
