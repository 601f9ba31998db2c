"""Reading the shape of a data file without loading it, and without pickles.

``.npy`` and ``.npz`` headers are read with numpy's format module (``allow_pickle=False``
throughout); ``.csv`` files give their column count from the first data row. The first axis
counts samples: a file of shape (N, 2) holds N points of a 2-D model, (N, 1, 8, 8) N images.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import attrs
import numpy as np
from numpy.lib import format as npformat

SCAN_LIMIT = 256 * 2**20  # bytes: `tfmc check` reads the values of data files up to this size


class DataFileError(Exception):
    """A data file is missing or malformed; the message names the problem."""


def sample_shape(path: Path, key: str = "", shown: str | None = None) -> tuple[int, ...]:
    """The shape of one sample stored in ``path`` (everything after the first axis); messages
    name the file as ``shown`` (the name the model gave)."""
    shape = array_shape(path, key, shown, csv_columns_only=True)
    if len(shape) < 2:
        raise DataFileError(f"'{path.name}' has shape {shape}; expected (samples, features...), "
                            "e.g. (N, 2) for 2-D points.")
    return tuple(int(s) for s in shape[1:])


def array_shape(path: Path, key: str = "", shown: str | None = None,
                csv_columns_only: bool = False) -> tuple[int, ...]:
    """The shape of the whole array stored in ``path`` (a constant of a model): .npy and .npz
    from their headers; a .csv file is (rows, columns), a single column a vector (rows,)."""
    try:
        exists = path.is_file()
    except OSError as err:  # e.g. a name longer than the file system allows
        raise DataFileError(f"The data file '{(shown or path.name)[:80]}' cannot be looked up: "
                            f"{err.strerror}.") from None
    if not exists:
        raise DataFileError(f"The data file '{(shown or path.name)[:80]}' does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with path.open("rb") as fh:
            shape, dtype = _npy_header(fh, path.name)
    elif suffix == ".npz":
        shape, dtype = _npz_header(path, key)
    else:
        rows, columns = _csv_shape(path)
        if csv_columns_only:
            return (rows, columns)
        return (rows,) if columns == 1 else (rows, columns)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataFileError(f"'{path.name}' holds {dtype} values; tfm reads numbers only "
                            "(integers or floats).")
    return tuple(int(s) for s in shape)


def _npy_header(fh, name: str):
    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(fh)
        else:
            shape, _, dtype = npformat.read_array_header_2_0(fh)
    except (ValueError, OSError) as err:
        raise DataFileError(f"'{name}' is not a valid .npy file: {err}") from None
    return shape, dtype


def choose_key(arrays: list[str], key: str, shown: str) -> str:
    """The array of a .npz file that data(...) reads: ``key`` when given, else the only one,
    else the one called x."""
    if key:
        if key not in arrays:
            raise DataFileError(f"'{shown}' has no array '{key}'; it holds "
                                f"{', '.join(arrays) or 'none'}.")
        return key
    if len(arrays) == 1:
        return arrays[0]
    if "x" in arrays:
        return "x"
    raise DataFileError(f"'{shown}' holds several arrays ({', '.join(arrays)}); "
                        "choose one with key = \"NAME\" (data(\"...\", key = ...) or "
                        "load(\"...\", key = ...)).")


def _npz_header(path: Path, key: str):
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
            key = choose_key(arrays, key, path.name)
            with archive.open(key + ".npy") as fh:
                return _npy_header(fh, f"{path.name}[{key}]")
    except zipfile.BadZipFile:
        raise DataFileError(f"'{path.name}' is not a valid .npz file.") from None


def csv_rows(path: Path, shown: str | None = None):
    """(row number, values) of every data row: numeric fields, the same number on each row;
    a first line of names (after blank and ``#`` lines) is a header; blank and ``#`` lines are
    skipped."""
    name = shown or path.name
    width, first = None, True
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(",")
            try:
                values = [float(f) for f in fields]
            except ValueError:
                if first:
                    first = False
                    continue  # a header row: the first line that is not blank or a comment
                raise DataFileError(f"'{name}', row {number}: not all fields are numbers "
                                    f"({line[:60]!r}).") from None
            first = False
            if width is None:
                width = len(values)
            elif len(values) != width:
                raise DataFileError(f"'{name}', row {number}: {len(values)} "
                                    f"field{'s' * (len(values) != 1)}, but earlier rows have "
                                    f"{width}.")
            yield number, values


def _csv_shape(path: Path) -> tuple[int, int]:
    """(rows, columns). Every row is read, so a malformed row anywhere is reported when the
    model is checked."""
    width, rows = None, 0
    for _, values in csv_rows(path):
        width, rows = len(values), rows + 1
    if width is None:
        raise DataFileError(f"'{path.name}' has no data rows.")
    return rows, width


def first_non_finite(array) -> tuple[int, int]:
    """(number of samples with a NaN or inf, index of the first) of an array (N, ...);
    (0, -1) when every value is finite."""
    finite = np.isfinite(np.asarray(array).reshape(len(array), -1)).all(axis=1)
    if finite.all():
        return 0, -1
    return int((~finite).sum()), int(np.argmin(finite))


@attrs.frozen
class Scan:
    """What ``tfmc check`` finds in the values of a data file: the samples that are not finite
    (count; the first as the file counts it: a csv row number, or a sample index) and the
    mean, standard deviation and range of the finite values."""

    non_finite: int
    first: str
    mean: float
    std: float
    low: float
    high: float


def scan(path: Path, key: str = "", shown: str | None = None) -> Scan | None:
    """The values of the data file ``path`` (its samples along the first axis), or None for a
    file larger than SCAN_LIMIT, which is not read here (the run checks what it loads)."""
    if path.stat().st_size > SCAN_LIMIT:
        return None
    name = shown or path.name
    suffix = path.suffix.lower()
    rows = None
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            array = archive[choose_key(list(archive.keys()), key, name)]
    else:
        numbered = list(csv_rows(path, shown))
        rows = [n for n, _ in numbered]
        array = np.asarray([v for _, v in numbered], dtype=np.float64)
    array = np.asarray(array, dtype=np.float64).reshape(len(array), -1)
    count, index = first_non_finite(array)
    first = "" if count == 0 else (f"row {rows[index]}" if rows is not None else
                                   f"sample {index}")
    values = array[np.isfinite(array)]
    if values.size == 0:
        return Scan(count, first, 0.0, 0.0, 0.0, 0.0)
    return Scan(count, first, float(values.mean()), float(values.std()), float(values.min()),
                float(values.max()))


def csv_header(path: Path) -> list[str] | None:
    """The column names of a .csv file's header row (its first line that is not blank or a
    comment, when not all its fields are numbers), or None."""
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split(",")]
            try:
                [float(f) for f in fields]
            except ValueError:
                return fields
            return None
    return None


def label_column(path: Path, key: str, shown: str | None = None) -> int:
    """The index of the label column ``key`` of a .csv file's header."""
    name = shown or path.name
    header = csv_header(path)
    if header is None:
        raise DataFileError(f"'{name}' has no header row, so no column is called '{key}'; "
                            "labels in a .csv file are a named column (a first line of names).")
    if key not in header:
        raise DataFileError(f"'{name}' has no column '{key}'; its columns are "
                            f"{', '.join(header)}.")
    return header.index(key)


def labels(path: Path, key: str, samples: int, classes: int = 0,
           shown: str | None = None) -> tuple[np.ndarray, int]:
    """The class labels ``key`` of a data file (an array of a .npz file, or a named column of a
    .csv file; one whole number per sample, 0 to classes - 1) and the number of classes:
    ``classes`` where given (every label is checked to be below it), else the largest label
    plus one. ``samples``: the rows of the file's samples."""
    name = shown or path.name
    suffix = path.suffix.lower()
    if suffix == ".csv":
        column = label_column(path, key, shown)
        values = np.asarray([v[column] for _, v in csv_rows(path, shown)])
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise DataFileError(f"'{name}' has no label array '{key}'; it holds "
                                    f"{', '.join(archive.files) or 'none'}.")
            values = np.asarray(archive[key])
    else:
        raise DataFileError(f"'{name}': labels are read from a .npz file (an array of their "
                            "own beside the samples: key = \"x\", labels = \"y\") or from a "
                            "named column of a .csv file.")
    where = f"'{name}[{key}]'"
    if values.ndim != 1 or len(values) != samples:
        raise DataFileError(f"{where} has shape {values.shape}; the labels are one number per "
                            f"sample: shape ({samples},).")
    whole = np.isfinite(values) & (np.round(values) == values) if values.dtype.kind == "f" \
        else np.ones(len(values), bool) if values.dtype.kind in "iu" else None
    if whole is None:
        raise DataFileError(f"{where} holds {values.dtype} values; labels are whole numbers.")
    if not whole.all():
        i = int(np.argmin(whole))
        raise DataFileError(f"{where}, sample {i}: the label {values[i]} is not a whole number.")
    values = values.astype(np.int64)
    if len(values) and values.min() < 0:
        i = int(np.argmin(values))
        raise DataFileError(f"{where}, sample {i}: the label {values[i]} is negative; labels "
                            "count classes from 0.")
    found = int(values.max()) + 1 if len(values) else 0
    if classes and found > classes:
        i = int(np.argmax(values))
        raise DataFileError(f"{where}, sample {i}: the label {values[i]} is not below "
                            f"classes = {classes} (labels run from 0 to classes - 1).")
    return values, classes or found


def conditions(path: Path, key: str, samples: int, shown: str | None = None) -> np.ndarray:
    """The condition vectors ``key`` of a .npz data file: an array (samples, k) of finite
    numbers (a vector (samples,) is one number per sample), as float32 (samples, k)."""
    name = shown or path.name
    if path.suffix.lower() != ".npz":
        raise DataFileError(f"'{name}': conditions are read from a .npz file, as an array of "
                            "their own beside the samples (key = \"x\", condition = \"c\").")
    with np.load(path, allow_pickle=False) as archive:
        if key not in archive.files:
            raise DataFileError(f"'{name}' has no condition array '{key}'; it holds "
                                f"{', '.join(archive.files) or 'none'}.")
        values = np.asarray(archive[key])
    where = f"'{name}[{key}]'"
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) != samples:
        raise DataFileError(f"{where} has shape {values.shape}; the conditions are one vector "
                            f"per sample: shape ({samples}, k).")
    if values.dtype.kind not in "biuf":
        raise DataFileError(f"{where} holds {values.dtype} values; conditions are numbers.")
    count, first = first_non_finite(values)
    if count:
        raise DataFileError(f"{where}, sample {first}: non-finite values (NaN or inf); {count} "
                            f"sample{'s' * (count != 1)} in all.")
    return values.astype(np.float32)
