"""experiments/gpu_checks/ncu_sass_top.py on a small source-page CSV: instructions read with
their samples, barrier wait loops named by the barrier's address, wgmma waits and opcodes."""

import csv

from experiments.gpu_checks import ncu_sass_top

ROWS = [
    ("0x10", "USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xe8", "1"),
    ("0x20", "SYNCS.PHASECHK.TRANS64.TRYWAIT P2, [UR24+0x1c870], R17", "6"),
    ("0x30", "@!P2  BRA 0x7f6cbf7bb530", "549"),
    ("0x40", "WARPGROUP.DEPBAR.LE gsb0, 0x0", "556"),
    ("0x50", "MUFU.EX2 R29, R29", "1,200"),
    ("0x60", "@P1   FMNMX.NAN R18, R21, R18, !PT", "7"),
    ("0x70", "USETMAXREG.DEALLOC.CTAPOOL 0x28", "0"),
    ("0x80", "@!P1  BRA 0x7f6cbf7bb830", "2203"),
]


def write(path):
  with open(path, "w", newline="") as file:
    writer = csv.writer(file)
    writer.writerow(["Address", "Source", ncu_sass_top.SAMPLES, "# Samples"])
    for address, sass, samples in ROWS:
      writer.writerow([address, sass, samples, samples])


def test_kinds_name_barrier_waits_wgmma_waits_and_opcodes(tmp_path):
  write(tmp_path / "sass.csv")
  instructions = ncu_sass_top.read(str(tmp_path / "sass.csv"))
  assert [samples for *_, samples in instructions] == [1, 6, 549, 556, 1200, 7, 0, 2203]
  kinds = [ncu_sass_top.kind(instructions, i) for i in range(len(instructions))]
  assert kinds[2] == "barrier wait [UR24+0x1c870] @0x30"
  assert kinds[3] == "wgmma wait @0x40"
  assert kinds[4:6] == ["MUFU.EX2", "FMNMX.NAN"]
  assert kinds[7] == "barrier wait [UR24+0x1c870] @0x80"  # a TRYWAIT within eight before it
  assert ncu_sass_top.kind([("0x90", "BRA 0x100", 3.0)], 0) == "BRA"  # none: an opcode


def test_main_sums_the_compute_warpgroups_only(tmp_path, monkeypatch, capsys):
  write(tmp_path / "sass.csv")
  monkeypatch.setattr("sys.argv", ["ncu_sass_top.py", str(tmp_path / "sass.csv"), "3"])
  ncu_sass_top.main()
  out = capsys.readouterr().out
  assert out.startswith("4522 stall samples")
  assert "compute warpgroups: 2319 samples (51%)" in out  # 0x10-0x60, not the BRA at 0x80
