"""Regenerate src/fastnn/datasets/digits.npz from the copy of the 8x8 digits scikit-learn ships.

    python3 tools/make_digits.py

Reads sklearn/datasets/data/digits.csv.gz (1797 rows: 64 pixel counts 0-16, then the label) from
the installed scikit-learn and writes two uint8 arrays, `data` (1797, 64) and `target` (1797,),
into a compressed .npz. The zip entries get a fixed timestamp so the same input gives the same
bytes. fastnn reads the file with NumPy alone (fastnn.data.load_digits).
"""
import gzip
import io
import os
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "fastnn", "datasets", "digits.npz")


def sklearn_digits_csv():
    import sklearn
    return os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")


def read_csv(path):
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16 \
            or table[:, 64].max() > 9:
        raise ValueError(f"{path}: not the 8x8 digits (shape {table.shape})")
    return table[:, :64].astype(np.uint8), table[:, 64].astype(np.uint8)


def write_npz(path, arrays):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main():
    data, target = read_csv(sklearn_digits_csv())
    write_npz(OUT, {"data": data, "target": target})
    print(f"wrote {os.path.normpath(OUT)}: {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
