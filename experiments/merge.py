"""Merges the results folders of several runs (e.g. several device calls) into one.

    python -P experiments/merge.py OUT RUN_DIR [RUN_DIR ...] [--drop-status error]

A long grid is often measured in parts (a device call has a time limit). Each part's records keep
their own roofline, timing method and versions; a record of a later folder replaces an earlier
one of the same (case, line), and records whose status is listed in ``--drop-status`` are left
out (e.g. the errors of a part that could not find its data), as are the cases a part's time
budget (``--budget-s``) left unstarted. ``run.json`` of OUT lists every
part's run information under ``parts``; table and plots are redrawn from the merged records.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence

if __package__ in (None, ""):
  sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))

from experiments import report  # noqa: E402


def merge_records(parts: Sequence[Sequence[dict]], drop_status: Sequence[str] = ()) -> list[dict]:
  """The records of all parts, one per (case, line), later parts winning, in first-seen order."""
  merged: dict[tuple[str, str], dict] = {}
  for records in parts:
    for record in records:
      if record.get("status") in drop_status or _never_started(record):
        continue
      merged[(record["case"], record["line"])] = record
  return list(merged.values())


def _never_started(record: dict) -> bool:
  """A case its run had no time left to start (``--budget-s``): it measured nothing, and must
  not replace what another part measured."""
  return record.get("status") == "skipped" and record.get("message", "").startswith(
      "the run's time budget")


def load_part(folder: pathlib.Path) -> tuple[list[dict], dict]:
  """(records, run info) of one results folder written by experiments/run.py."""
  with open(folder / "results.jsonl") as stream:
    records = [json.loads(line) for line in stream if line.strip()]
  return records, json.loads((folder / "run.json").read_text())


def main(argv: Sequence[str] | None = None) -> list[pathlib.Path]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("out", type=pathlib.Path, help="folder to write the merged results to")
  parser.add_argument("parts", nargs="+", type=pathlib.Path, help="results folders, in order")
  parser.add_argument("--drop-status", nargs="*", default=[],
                      help="leave out records with these statuses (e.g. error)")
  args = parser.parse_args(argv)
  loaded = [load_part(folder) for folder in args.parts]
  records = merge_records([records for records, _ in loaded], args.drop_status)
  last_info = loaded[-1][1]
  run_info = {**last_info, "cases": len({record["case"] for record in records}),
              "command": " && ".join(info.get("command", "?") for _, info in loaded),
              "elapsed": " + ".join(str(info.get("elapsed", "?")) for _, info in loaded),
              "parts": [{"folder": folder.name, **info} for folder, (_, info)
                        in zip(args.parts, loaded)],
              "dropped_statuses": args.drop_status}
  paths = report.write(args.out, records, run_info)
  for path in paths:
    print(path)
  return paths


if __name__ == "__main__":
  main()
