"""labkit: the workbook's own tooling (instructors and maintainers; students never edit it).

overlay  runs the official graded tests on a candidate lora.py in a pristine copy of the workbook
report   the pytest plugin that records each graded test's outcome for overlay
verify   the maintainers' verification: reference passes, stubs fail for the right reason
"""
