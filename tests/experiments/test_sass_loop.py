"""experiments/gpu_checks/sass_loop.py: the loop found in a made-up SASS listing, and errors."""

import pytest

from experiments.gpu_checks import sass_loop

# Two functions; the first has an outer loop (0x0010 .. 0x0090) around an inner one
# (0x0030 .. 0x0070) that holds both HMMAs, and a branch into the loop from before it.
SASS = """
        Function : _Z6KernelILi1EEvv
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/              @!P0 BRA 0xa0 ;
        /*0020*/                   LDGSTS.E.BYPASS.128 [R2], desc[UR4][R4.64] ;
        /*0030*/                   DEPBAR.LE SB0, 0x1 ;
        /*0040*/                   POPC R3, R3 ;
        /*0050*/                   HMMA.16816.F32.BF16 R8, R4, R6, R8 ;
        /*0060*/                   HMMA.16816.F32.BF16 R8, R4, R6, R8 ;
        /*0070*/               @P0 BRA 0x20 ;
        /*0080*/               @P1 BRA 0x10 ;
        /*0090*/                   EXIT ;
        Function : _Z5OtherILi2EEvv
        /*0000*/                   EXIT ;
"""


def test_the_smallest_loop_holding_every_mma():
  body = sass_loop.loop_body(sass_loop.function_lines(SASS, "KernelILi1E"))
  assert [address for address, _ in body] == [0x20, 0x30, 0x40, 0x50, 0x60, 0x70]
  assert [opcode for _, opcode in body][:2] == ["LDGSTS.E.BYPASS.128", "DEPBAR.LE"]


def test_errors_name_what_is_missing():
  with pytest.raises(ValueError, match="no function whose name contains 'Missing'"):
    sass_loop.function_lines(SASS, "Missing")
  with pytest.raises(ValueError, match="the function has no HMMA"):
    sass_loop.loop_body(sass_loop.function_lines(SASS, "OtherILi2E"))
