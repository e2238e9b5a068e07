"""Every matrix multiply fastnn makes goes through its GEMM module (fastnn/_kernels/gemm.pyx and
its twin gemm_numpy.py), so that the engine chosen there (OpenBLAS, oneDNN) is the one that runs.
Read off the source with Python's tokenizer, so that strings and comments do not count."""
import io
import pathlib
import tokenize

import pytest

import fastnn

pytestmark = pytest.mark.backend_independent

SOURCE = pathlib.Path(fastnn.__file__).parent
GEMM_MODULE = {"_kernels/gemm.pyx", "_kernels/gemm_numpy.py"}
NUMPY_MULTIPLIES = {"matmul", "tensordot", "dot", "vdot", "inner", "einsum"}
# Products of vectors, not matrices: what each file may have, and why.
VECTOR_PRODUCTS = {
    "model.py": ["np.dot"],  # the flat gradient with itself: finite only if every entry is
    "optim/lbfgs.py": ["np.dot"] * 8,  # L-BFGS's inner products of flat vectors
    "regularization.py": ["np.einsum"],  # MaxNorm's column norms
}
LINE_STARTS = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT}


def multiplies(path):
    """(line, what) of every matrix-multiply operator (not a decorator's @) and every NumPy
    product function (np.matmul, np.dot, ...) in a Python file."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
              if t.type != tokenize.COMMENT]
    found = []
    for i, t in enumerate(tokens):
        if t.type == tokenize.OP and t.string in ("@", "@=") and i and \
                tokens[i - 1].type not in LINE_STARTS:
            found.append((t.start[0], t.string))
        elif (t.type == tokenize.NAME and t.string in NUMPY_MULTIPLIES and i >= 2
              and tokens[i - 1].string == "." and tokens[i - 2].string in ("np", "numpy")):
            found.append((t.start[0], "np." + t.string))
    return found


def test_no_matrix_multiply_outside_the_gemm_module():
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = path.relative_to(SOURCE).as_posix()
        products = [what for _, what in multiplies(path)]
        if name not in GEMM_MODULE and products != VECTOR_PRODUCTS.get(name, []):
            found[name] = multiplies(path)
    assert found == {}


def test_the_check_sees_a_multiply(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""A @ B in a docstring does not count."""\n# nor X @ W here\n'
                      "C = A @ B\nD = np.matmul(A, B)\n@property\ndef f(self):\n"
                      "    return kernels.matmul(A, B) + np.dot(a, b)\n")
    assert multiplies(sample) == [(3, "@"), (4, "np.matmul"), (7, "np.dot")]
