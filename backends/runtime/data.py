"""Loading ``data("file")`` densities safely: .npy / .npz without pickles, .csv as numbers.

Every problem names the file and, where it is one row, the row: a missing file, a wrong shape or
dtype, text in a .csv, and non-finite values (NaN, inf). Returns float32 arrays (N, *shape).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...data_files import DataFileError, choose_key, csv_rows, first_non_finite
from ...data_files import conditions as read_conditions, label_column, labels as read_labels
from ...errors import Diagnostic, TfmDataError


def _error(message: str, suggestion: str | None = None) -> TfmDataError:
    return TfmDataError(Diagnostic("Data", message, suggestion=suggestion))


def resolve(path: str, root: str | Path) -> Path:
    """Data files are named relative to the model file's folder (``root``)."""
    return Path(root) / path


def load_array(path: str | Path) -> np.ndarray:
    """The samples (N, ...) of a .npy, .npz (its only array, or x) or .csv file named as given
    (``tfmc plot``): numbers, at least two axes, float32; any shape."""
    path = Path(path)
    if not path.is_file():
        raise _error(f"The file '{path}' does not exist.")
    return _read(path, str(path), None)


def load(path: str, root: str | Path, shape: tuple[int, ...], key: str = "",
         labels: str = "") -> np.ndarray:
    """The samples of a data file; ``labels``: the name of a .csv file's label column, which is
    left out of the samples."""
    full = resolve(path, root)
    if not full.is_file():
        raise _error(f"The data file '{path}' does not exist (looked in {Path(root)}).",
                     "Data files are named relative to the model file.")
    if labels and full.suffix.lower() == ".csv":
        try:
            column = label_column(full, labels, path)
        except DataFileError as err:
            raise _error(str(err)) from None
        array = _read(full, path, None, key)
        return np.delete(array, column, axis=1).reshape((len(array),) + tuple(shape))
    return _read(full, path, tuple(shape), key)


def _read(full: Path, path: str, shape: tuple[int, ...] | None, key: str = "") -> np.ndarray:
    """The checked float32 samples of ``full`` (named ``path`` in messages); ``shape`` (None:
    any) is the shape of one sample."""
    suffix = full.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(full, allow_pickle=False)
        elif suffix == ".npz":
            array = _npz(full, path, key)
        else:
            array = _csv(full, path)
    except TfmDataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise _error(f"The data file '{path}' cannot be read: {err}") from None
    if array.dtype.kind not in "biuf":
        raise _error(f"'{path}' holds {array.dtype} values; tfm reads numbers only.")
    if array.ndim < 2 or (shape is not None and tuple(array.shape[1:]) != shape):
        if shape is None:
            raise _error(f"'{path}' has shape {tuple(array.shape)}; expected (samples, ...).")
        raise _error(f"'{path}' has shape {tuple(array.shape)}; the model needs "
                     f"(samples, {', '.join(map(str, shape))}).",
                     "Check the model's dim, or the file's layout (samples first).")
    if len(array) == 0:
        raise _error(f"'{path}' holds no samples.")
    array = array.astype(np.float32)
    count, first = first_non_finite(array)
    if count:
        row = first + (1 if suffix == ".csv" else 0)
        what = "row" if suffix == ".csv" else "sample"
        raise _error(f"'{path}', {what} {row}: non-finite values (NaN or inf); "
                     f"{count} sample{'s' * (count != 1)} in all.",
                     "Remove or repair those samples.")
    return array


def load_constant(name: str, path: str, root: str | Path, shape: tuple[int, ...],
                  key: str = "") -> np.ndarray:
    """The array of ``constant name = load(path)``: the shape the model was compiled with
    (the file may have changed since), finite numbers, float32."""
    full = resolve(path, root)
    if not full.is_file():
        raise _error(f"The data file '{path}' of constant '{name}' does not exist (looked in "
                     f"{Path(root)}).", "Data files are named relative to the model file.")
    suffix = full.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(full, allow_pickle=False)
        elif suffix == ".npz":
            array = _npz(full, path, key)
        else:
            array = _csv(full, path)
            array = array[:, 0] if array.shape[1] == 1 and len(shape) == 1 else array
    except TfmDataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise _error(f"The data file '{path}' cannot be read: {err}") from None
    if array.dtype.kind not in "biuf":
        raise _error(f"'{path}' holds {array.dtype} values; tfm reads numbers only.")
    if tuple(array.shape) != tuple(shape):
        raise _error(f"The constant '{name}' read from '{path}' has shape "
                     f"{list(array.shape)}; the model was compiled with {list(shape)}.",
                     "Compile the model again (tfmc run) after changing the file.")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        where = np.argwhere(~np.isfinite(array))[0]
        raise _error(f"The constant '{name}' read from '{path}' holds a non-finite value at "
                     f"index {tuple(int(i) for i in where)}.", "Repair the file.")
    return array


def _npz(full: Path, shown: str, key: str) -> np.ndarray:
    with np.load(full, allow_pickle=False) as archive:
        try:
            key = choose_key(list(archive.keys()), key, shown)
        except DataFileError as err:
            raise _error(str(err)) from None
        return archive[key]


def _csv(full: Path, shown: str) -> np.ndarray:
    rows = []
    try:
        for number, values in csv_rows(full, shown):
            if not np.isfinite(values).all():
                raise _error(f"'{shown}', row {number}: non-finite values (NaN or inf).",
                             "Remove or repair that row.")
            rows.append(values)
    except DataFileError as err:
        raise _error(str(err)) from None
    if not rows:
        raise _error(f"'{shown}' has no data rows.")
    return np.asarray(rows, dtype=np.float64)


def load_conditions(path: str, root: str | Path, key: str, samples: int) -> np.ndarray:
    """The condition vectors ``key`` of a .npz data file, checked, as float32 (samples, k)."""
    try:
        return read_conditions(resolve(path, root), key, samples, path)
    except DataFileError as err:
        raise _error(str(err)) from None


def load_labels(path: str, root: str | Path, key: str, samples: int,
                classes: int) -> np.ndarray:
    """The class labels ``key`` of a .npz data file, checked (one whole number per sample,
    from 0 to classes - 1) as int32; a problem names the file, the array and the sample."""
    try:
        values, _ = read_labels(resolve(path, root), key, samples, classes, path)
    except DataFileError as err:
        raise _error(str(err)) from None
    except FileNotFoundError:
        raise _error(f"Data file '{path}' not found (relative to '{root}').") from None
    return values.astype(np.int32)
