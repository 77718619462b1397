"""labkit: the workbook's own tooling (instructors and maintainers; students never edit it).

overlay  runs the official graded tests on a candidate lora.py in a pristine copy of the workbook
report   the pytest plugin that records each graded test's outcome, and the reader that judges it from outside
sandbox  the bubblewrap sandbox every run of a submission's code goes through when grading
rules    the lab's code rule, checked on a submission's source without running it
verify   the maintainers' verification: reference passes, stubs fail for the right reason
"""
