"""The workload and its contenders for bench/compare.py: the MLP shapes and configs, the network
described once (architecture(), from which fastnn's model, PyTorch's and the memory count are
built), and one step function per contender: the GEMM floor, the same GEMMs on fastnn's GEMM
engine, fastnn (on either backend, computing in float32 or bfloat16) and PyTorch (float32, or
autocast to bfloat16)."""
import itertools

import numpy as np

SHAPES = {  # name: (batch, layer sizes)
    "tiny": (64, (64, 128, 10)),
    "medium": (128, (784, 512, 512, 10)),
    "large": (256, (3072, 1024, 1024, 10)),
}
CONFIGS = {  # name: (optimizer, BatchNorm + Dropout on every hidden layer)
    "sgd": ("sgd", False),
    "adam": ("adam", False),
    "sgd+bn+dropout": ("sgd", True),
    "adam+bn+dropout": ("adam", True),
}
ENGINES = ("openblas", "onednn", "auto")  # fnn.set_gemm_engine's names
# float32: fastnn and torch; bfloat16: fastnn's compute_dtype="bfloat16" and torch's autocast.
COMPUTE_DTYPES = ("float32", "bfloat16")
SGD = dict(lr=0.01, momentum=0.9)
ADAM = dict(lr=1e-3)
DROPOUT_P = 0.5
SEED = 0
BATCHES = 8  # different batches the steps cycle through


# The network, described once; fastnn's model, torch's model and the memory count are built from it.

def architecture(sizes, regularized):
    """Layer specs in order: ("dense", in, out, activation), ("batchnorm", width),
    ("relu", width), ("dropout", width). Hidden layers are Dense(relu), or, regularized,
    Dense -> BatchNorm -> ReLU -> Dropout; the last Dense gives the class scores."""
    spec = []
    hidden = list(zip(sizes[:-2], sizes[1:-1]))
    for a, b in hidden:
        if regularized:
            spec += [("dense", a, b, "identity"), ("batchnorm", b), ("relu", b), ("dropout", b)]
        else:
            spec.append(("dense", a, b, "relu"))
    spec.append(("dense", sizes[-2], sizes[-1], "identity"))
    return spec


def needed_bytes(spec, batch, optimizer, itemsize=4):
    """What one training step has to hold, counted from the layer specs (bytes by part):

        parameters      Dense W (in x out) and b (out); BatchNorm gamma and beta (width each),
                        plus its running mean and variance (buffers, width each)
        gradients       one array per parameter
        optimizer       one per parameter for SGD with momentum (velocity), two for Adam (moments)
        activations     kept for backward: every layer's output (batch x width): a Dense's
                        (after its fused activation), BatchNorm's, ReLU's and Dropout's; Dropout's
                        mask (1 byte per unit); BatchNorm's batch mean and 1/std (width each)
        batch           X (batch x inputs) and the int64 labels y (batch)

    Not counted: the gradient work arrays of backward (dL/dZ, dL/dX per layer), the loss's
    dL/dscores and any temporaries: those are what the measured peak may exceed this by.
    """
    parameters = buffers = activations = 0
    for layer in spec:
        kind, width = layer[0], layer[2] if layer[0] == "dense" else layer[1]
        if kind == "dense":
            parameters += layer[1] * width + width
            activations += batch * width * itemsize
        elif kind == "batchnorm":
            parameters += 2 * width
            buffers += 2 * width
            activations += batch * width * itemsize + 2 * width * itemsize
        elif kind == "relu":
            activations += batch * width * itemsize
        elif kind == "dropout":
            activations += batch * width * itemsize + batch * width
    states = {"sgd": 1, "adam": 2}[optimizer]
    parts = {
        "parameters": (parameters + buffers) * itemsize,
        "gradients": parameters * itemsize,
        "optimizer": states * parameters * itemsize,
        "activations": activations,
        "batch": batch * spec[0][1] * itemsize + batch * 8,
    }
    parts["total"] = sum(parts.values())
    return parts


def make_batches(batch, sizes):
    """BATCHES (X, y) pairs: X (batch, inputs) float32, y int64 labels, from one generator."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((BATCHES * batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], BATCHES * batch)
    return [(X[i:i + batch], y[i:i + batch]) for i in range(0, BATCHES * batch, batch)]


# The GEMM floor.

class GemmFloor:
    """The matrix multiplies of one training step and nothing else, into preallocated outputs
    (np.matmul(..., out=...) on NumPy's BLAS): X @ W per layer forward, X.T @ dZ per layer and
    dZ @ W.T per layer but the first backward. A fastnn step, whose GEMMs are these, costs at
    least this much; PyTorch multiplies with its own BLAS (MKL), so for it this is a reference.

    Every operand is a separate array of small values (0.01 * randn; the first layer's input is
    the batch), and no output is ever an input, so values stay far from overflow and denormals
    however many steps run. matmul: numpy_matmul (the floor) or engine_matmul()."""

    def __init__(self, batch, sizes, batches, matmul=None):
        self.matmul = matmul or numpy_matmul
        rng = np.random.default_rng(SEED + 1)

        def small(*shape):
            return (0.01 * rng.standard_normal(shape)).astype(np.float32)

        self.batches = itertools.cycle([X for X, _ in batches])
        self.layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.layers.append(dict(
                X=None if i == 0 else small(batch, a), W=small(a, b), dZ=small(batch, b),
                Z=np.empty((batch, b), np.float32), dW=np.empty((a, b), np.float32),
                dX=None if i == 0 else np.empty((batch, a), np.float32)))

    def step(self):
        X0, matmul = next(self.batches), self.matmul
        for layer in self.layers:  # forward
            matmul(X0 if layer["X"] is None else layer["X"], False, layer["W"], False, layer["Z"])
        for layer in reversed(self.layers):  # backward
            X = X0 if layer["X"] is None else layer["X"]
            matmul(X, True, layer["dZ"], False, layer["dW"])
            if layer["dX"] is not None:
                matmul(layer["dZ"], False, layer["W"], True, layer["dX"])


def numpy_matmul(A, trans_a, B, trans_b, out):
    """out = op(A) @ op(B) by np.matmul (NumPy's BLAS): the floor's multiply."""
    np.matmul(A.T if trans_a else A, B.T if trans_b else B, out=out)


def engine_matmul():
    """matmul(A, trans_a, B, trans_b, out): out = op(A) @ op(B) by fastnn's compiled GEMM module
    on whatever fnn.set_gemm_engine chose, the multiplies of fastnn's step without the rest of it
    (through the module's Python entry, whose argument checks the step does not pay)."""
    from fastnn._kernels import gemm
    call = gemm.matmul

    def matmul(A, trans_a, B, trans_b, out):
        call(A, B, out=out, trans_a=trans_a, trans_b=trans_b)
    return matmul


def gemm_flops(batch, sizes):
    """Floating-point operations of a step's GEMMs (2 m k n each, as GemmFloor runs them)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    return sum(2 * batch * a * b * (3 if i else 2) for i, (a, b) in enumerate(layers))


# fastnn.

def fastnn_model(spec, compute_dtype="float32"):
    """The network as a fastnn Sequential (float32 parameters) computing in compute_dtype."""
    import fastnn as fnn
    layers = []
    for layer in spec:
        if layer[0] == "dense":
            layers.append(fnn.Dense(layer[1], layer[2], activation=layer[3]))
        elif layer[0] == "batchnorm":
            layers.append(fnn.BatchNorm(layer[1]))
        elif layer[0] == "relu":
            layers.append(fnn.ReLU())
        elif layer[0] == "dropout":
            layers.append(fnn.Dropout(DROPOUT_P))
    return fnn.Sequential(*layers, dtype="float32", seed=SEED, compute_dtype=compute_dtype)


def fastnn_optimizer(model, optimizer):
    import fastnn as fnn
    if optimizer == "sgd":
        return fnn.optim.SGD(model.parameters(), **SGD)
    return fnn.optim.Adam(model.parameters(), **ADAM)


def fastnn_step_api(model):
    """How a step is run on `model` (a Sequential or the class)."""
    return "train_step" if hasattr(model, "train_step") else "forward/zero_grad/backward/step"


def fastnn_stepper(model, opt, batches, losses):
    """A function running one training step on the next batch, appending the loss to `losses`."""
    import fastnn as fnn
    loss_fn = fnn.losses.softmax_cross_entropy
    data = itertools.cycle(batches)
    if hasattr(model, "train_step"):
        def step():
            X, y = next(data)
            losses.append(float(model.train_step(X, y, loss_fn, opt)))
    else:
        def step():
            X, y = next(data)
            scores = model.forward(X, training=True)
            loss, dscores = loss_fn(scores, y)
            model.zero_grad()
            model.backward(dscores)
            opt.step()
            losses.append(float(loss))
    return step


# PyTorch.

def torch_stepper(torch, spec, optimizer, init_model, batches, losses, autocast=False):
    """The same network in PyTorch, starting from init_model's (fastnn) weights; with autocast,
    forward and loss run under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's own mixed
    precision (float32 weights and update, bfloat16 matrix multiplies)."""
    F = torch.nn.functional
    modules = []
    dense = (l for l in init_model.layers if l.__class__.__name__ == "Dense")
    for layer in spec:
        if layer[0] == "dense":
            source = next(dense)
            linear = torch.nn.Linear(layer[1], layer[2])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(source.W.data.T.copy()))
                linear.bias.copy_(torch.from_numpy(source.b.data))
            modules.append(linear)
            if layer[3] == "relu":
                modules.append(torch.nn.ReLU())
        elif layer[0] == "batchnorm":
            modules.append(torch.nn.BatchNorm1d(layer[1]))
        elif layer[0] == "relu":
            modules.append(torch.nn.ReLU())
        elif layer[0] == "dropout":
            modules.append(torch.nn.Dropout(DROPOUT_P))
    model = torch.nn.Sequential(*modules).train()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), **SGD)
    else:
        opt = torch.optim.Adam(model.parameters(), **ADAM)
    data = itertools.cycle([(torch.from_numpy(X), torch.from_numpy(y)) for X, y in batches])

    def step():
        X, y = next(data)
        opt.zero_grad(set_to_none=True)
        if autocast:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(X), y)
        else:
            loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return step
