set -x
export PYTHONPATH=$PWD:/tmp/site
python3 -m pip install -q --no-index --find-links .whl --target /tmp/site pytest hypothesis pytest-xdist execnet 2>&1 | tail -2
SECONDS=0
python3 -m jsparse._gpu.sparse_mma build > $OUT/build.log 2>&1; echo build rc $? $SECONDS
grep -E "registers" $OUT/build.log | head -3
timeout -s INT -k 5 170 python3 -P -m pytest -v -p no:cacheprovider -x -W ignore::DeprecationWarning --tb=short tests/gpu/test_sparse_mma.py -k tiled > $OUT/tests.log 2>&1; echo tests rc $? $SECONDS
tail -5 $OUT/tests.log
left=$((585 - SECONDS))
timeout -k 3 $left python3 -P experiments/gpu_checks/tiled_mma_probe.py $OUT/probe --budget-s $((left - 90)) > $OUT/probe.log 2>&1; echo probe rc $? $SECONDS
tail -3 $OUT/probe.log
