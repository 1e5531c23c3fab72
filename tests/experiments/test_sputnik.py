"""The Sputnik benchmark line's pieces that need no GPU: the row swizzle, the CSR conversion and its
errors, the device-array checks (on stand-in objects with ``__cuda_array_interface__``), the
shim's size guards (when the library is built here), and when the lines apply."""

import pathlib

import numpy as np
import pytest
import scipy.sparse

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

from experiments import lines, machine  # noqa: E402
from experiments.grid import Case  # noqa: E402
from experiments.sputnik import binding  # noqa: E402


def _random_csr(rng, rows, cols, density, padding=0):
  """A SciPy CSR with empty and ragged rows, and its arrays padded by ``padding`` stored slots."""
  matrix = scipy.sparse.random(rows, cols, density=density, format="csr", random_state=rng,
                               dtype=np.float32)
  matrix.sort_indices()
  values = np.concatenate([matrix.data, rng.standard_normal(padding).astype(np.float32)])
  columns = np.concatenate([matrix.indices, rng.integers(0, max(cols, 1), padding)])
  return matrix, matrix.indptr.astype(np.int64), columns, values


@pytest.mark.parametrize("rows", [0, 1, 7, 64])
def test_row_swizzle_is_rows_by_decreasing_length(rows):
  rng = np.random.default_rng()
  lengths = rng.integers(0, 4, rows)  # many ties
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  order = binding.row_swizzle(offsets)
  assert order.dtype == np.int32 and sorted(order.tolist()) == list(range(rows))
  for first, second in zip(order[:-1], order[1:]):
    assert (lengths[first], -first) > (lengths[second], -second)


@pytest.mark.parametrize("shape,density,padding", [((33, 17), 0.3, 5), ((1, 40), 0.5, 0),
                                                   ((20, 20), 0.0, 3), ((5, 1), 1.0, 0)])
def test_from_csr_trims_padding_and_keeps_the_matrix(shape, density, padding):
  rng = np.random.default_rng()
  matrix, offsets, columns, values = _random_csr(rng, *shape, density, padding)
  csr = binding.SputnikCsr.from_csr(offsets, columns, values, shape)
  assert csr.shape == shape and csr.nnz == matrix.nnz
  assert csr.values.dtype == np.float32
  assert csr.column_indices.dtype == csr.row_offsets.dtype == csr.row_indices.dtype == np.int32
  rebuilt = scipy.sparse.csr_matrix((csr.values, csr.column_indices, csr.row_offsets), shape)
  np.testing.assert_array_equal(rebuilt.toarray(), matrix.toarray())
  coo = matrix.tocoo()
  np.testing.assert_array_equal(csr.entry_rows(), coo.row)
  np.testing.assert_array_equal(csr.row_indices, binding.row_swizzle(matrix.indptr))


def _good_arrays():
  return [np.array([0, 1, 1, 3]), np.array([2, 0, 3]), np.ones(3, np.float32)]


@pytest.mark.parametrize("change,error,words", [
    (lambda a: a.__setitem__(0, np.array([0, 1, 3])), ValueError,
     r"row_offsets must have M \+ 1 = 4"),
    (lambda a: a.__setitem__(0, np.array([1, 1, 1, 3])), ValueError, "start at 0"),
    (lambda a: a.__setitem__(0, np.array([0, 2, 1, 3])), ValueError, "nondecreasing"),
    (lambda a: a.__setitem__(0, np.array([0, 1, 1, 4])), ValueError, "exceeds the 3 stored"),
    (lambda a: a.__setitem__(1, np.array([2, 0, 4])), ValueError, "col_indices must lie"),
    (lambda a: a.__setitem__(1, np.array([2, -1, 3])), ValueError, "col_indices must lie"),
    (lambda a: a.__setitem__(1, np.array([2.0, 0, 3])), TypeError, "col_indices must be"),
    (lambda a: a.__setitem__(2, np.ones(3)), TypeError, "values must be a 1-D float32"),
    (lambda a: a.__setitem__(2, np.ones(4, np.float32)), ValueError, "same length"),
])
def test_from_csr_errors_name_the_argument(change, error, words):
  arrays = _good_arrays()
  binding.SputnikCsr.from_csr(*arrays, (3, 4))  # the unchanged arrays are fine
  change(arrays)
  with pytest.raises(error, match=words):
    binding.SputnikCsr.from_csr(*arrays, (3, 4))


class FakeCudaArray:
  """Just the ``__cuda_array_interface__`` of a device array (no memory behind it)."""

  def __init__(self, shape, typestr="<f4", address=0x7F0000000000, strides=None):
    self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr,
                                     "data": (address, False), "strides": strides, "version": 3}


def test_device_pointer_accepts_contiguous_aligned_arrays():
  assert binding.device_pointer("x", FakeCudaArray((4, 8)), "<f4", (4, 8)) == 0x7F0000000000
  explicit = FakeCudaArray((4, 8), strides=(32, 4))
  assert binding.device_pointer("x", explicit, "<f4", (4, 8)) == 0x7F0000000000
  single_row = FakeCudaArray((1, 8), strides=(999, 4))  # a size-1 dimension's stride is free
  assert binding.device_pointer("x", single_row, "<f4", (1, 8)) == 0x7F0000000000


@pytest.mark.parametrize("array,error,words", [
    (np.zeros((4, 8), np.float32), TypeError, "dense must be a CUDA array"),
    (FakeCudaArray((4, 8), "<f8"), TypeError, "dense must have dtype float32, got float64"),
    (FakeCudaArray((8, 4)), ValueError, r"dense must have shape \(4, 8\), got \(8, 4\)"),
    (FakeCudaArray((4, 8), strides=(4, 16)), ValueError, "dense must be C-contiguous"),
    (FakeCudaArray((4, 8), address=0x7F0000000004), ValueError, "multiple of 16 bytes"),
])
def test_device_pointer_errors_name_the_argument(array, error, words):
  with pytest.raises(error, match=words):
    binding.device_pointer("dense", array, "<f4", (4, 8))


def test_missing_library_gives_a_reason(monkeypatch, tmp_path):
  monkeypatch.setenv(binding.LIBRARY_ENV, str(tmp_path / "absent.so"))
  assert "absent.so not built" in binding.missing_reason()
  assert "build.sh" in binding.missing_reason()


needs_library = pytest.mark.skipif(binding.missing_reason() is not None,
                                   reason="libsputnik_jsparse.so not built here")


@needs_library
def test_shim_size_guards_need_no_gpu():
  """Empty problems return success without touching CUDA; negative sizes are refused."""
  library = binding.load()
  nothing = [None] * 7
  assert library.sputnik_spmm_f32(0, 5, 8, 0, *nothing) == 0
  assert library.sputnik_spmm_f32(5, 5, 0, 3, *nothing) == 0
  assert library.sputnik_sddmm_f32(5, 8, 5, 0, *nothing) == 0
  for function in (library.sputnik_spmm_f32, library.sputnik_sddmm_f32):
    code = function(4, -1, 4, 0, *nothing)
    assert code != 0
    assert library.sputnik_error_string(code) == b"invalid argument"
  assert library.sputnik_error_string(0) == b"no error"


@needs_library
def test_launchers_check_shapes_and_run_empty_problems_without_a_gpu():
  csr = binding.DeviceCsr((0, 6), 0, *(FakeCudaArray((n,), t) for n, t in
                                       ((0, "<f4"), (0, "<i4"), (1, "<i4"), (0, "<i4"))))
  dense, out = FakeCudaArray((6, 8)), FakeCudaArray((0, 8))
  spmm = binding.Spmm(csr, dense, out)
  assert spmm() is out  # M = 0: nothing to launch
  with pytest.raises(ValueError, match=r"out must have shape \(0, 8\), got \(0, 4\)"):
    binding.Spmm(csr, dense, FakeCudaArray((0, 4)))
  with pytest.raises(ValueError, match="dense must be a 2-D CUDA array"):
    binding.Spmm(csr, FakeCudaArray((6,)), out)
  lhs, rhs, values = FakeCudaArray((0, 3)), FakeCudaArray((6, 3)), FakeCudaArray((0,))
  assert binding.Sddmm(csr, lhs, rhs, values)() is values
  with pytest.raises(ValueError, match=r"rhs must have shape \(6, 3\)"):
    binding.Sddmm(csr, lhs, FakeCudaArray((6, 4)), values)
  with pytest.raises(ValueError, match="row_offsets must have shape"):
    bad = binding.DeviceCsr((0, 6), 0, *(FakeCudaArray((n,), t) for n, t in
                                         ((0, "<f4"), (0, "<i4"), (2, "<i4"), (0, "<i4"))))
    binding.Spmm(bad, dense, out)


CPU = machine.Machine("cpu", "cpu", "test cpu", 2, 2**25, {}, "2026-11-25")
GPU = machine.Machine("cuda", "NVIDIA H100", "test cpu", 16, 50 * 2**20, {}, "2026-11-25")


def test_lines_are_listed_and_refuse_the_cpu():
  by_name = {line.name: line for line in lines.all_lines()}
  for name in ("sputnik", "sputnik-sddmm"):
    assert by_name[name].framework == "sputnik"
    assert "CUDA" in by_name[name].available(CPU)


@pytest.mark.parametrize("name,op,format,dtype,applies", [
    ("sputnik", "spmm", "csr", "float32", True),
    ("sputnik", "spmm", "csr", "bfloat16", False),
    ("sputnik", "spmm", "coo", "float32", False),
    ("sputnik", "sddmm", "csr", "float32", False),
    ("sputnik", "spmv", "csr", "float32", False),
    ("sputnik-sddmm", "sddmm", "csr", "float32", True),
    ("sputnik-sddmm", "spmm", "csr", "float32", False),
    ("sputnik-sddmm", "sddmm", "bsr", "float32", False),
])
def test_lines_apply_to_float32_csr_of_their_op(name, op, format, dtype, applies):
  line = {line.name: line for line in lines.all_lines()}[name]
  case = Case(op, format, "uniform/64x64", 0.9, 1 if op == "spmv" else 32, dtype)
  assert (line.applies(case, GPU) is None) == applies


def test_gpu_check_script_passes_valid_harness_arguments():
  """The run.py call in gpu_checks/sputnik.sh parses, and names only lines that exist."""
  import shlex

  from experiments import run
  import re
  script = (REPO_ROOT / "experiments/gpu_checks/sputnik.sh").read_text()
  start = script.index("python3 experiments/run.py")
  command = script[start:script.index(" > ", start)].replace("\\\n", " ")
  # The SPUTNIK_* variables unset: each array its default.
  defaults = dict(re.findall(r'read -r -a (\w+) <<< "\$\{SPUTNIK_\w+:-([^}]*)\}"', script))
  assert set(defaults) == {"sources", "sparsities", "ops", "lines", "more"}
  assert defaults["more"] == ""
  for name, default in defaults.items():
    command = command.replace(f'"${{{name}[@]}}"', default)
  words = shlex.split(command.replace('"$budget"', "100").replace('"$out/results"', "/tmp/x"))
  args = run.parse_args(words[2:])
  assert not args.kernel_time and run.parse_args([*words[2:], "--kernel-time"]).kernel_time
  known = {line.name for line in lines.all_lines()}
  assert set(args.lines) <= known and {"sputnik", "sputnik-sddmm", "torch-csr"} <= set(args.lines)
  assert args.ops == ["spmm", "sddmm"] and args.formats == ["csr"] and args.budget_s == 100
  assert args.sources == ["uniform/4096x4096"] and len(args.sparsities) == 6
