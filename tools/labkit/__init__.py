"""labkit: the workbook's own tooling (instructors and maintainers; students never edit it).

One subpackage per job, each importing only from those listed before it:

core      the lab's facts (labs/lab.toml), running the graded tests on a candidate lora.py in a
          pristine copy of the workbook (overlay), the report plugin judged from outside, the sandbox
          and its seccomp filter, the worker that runs scenarios beside a submission, and the
          channel (framing and a codec that cannot run code) the judge talks to it over
content   what readers see: the notebooks, built and executed with the reference, and the bilingual site
grading   what students and instructors run: check, grade, the judge (the pytest plugin that runs
          the graded tests' checks apart from the submission), the notes measurement, the code rule,
          reading submissions, writing out the example ones, the GitHub workflows that run them
quality   what maintainers run to trust the lab: the verification of the reference and the stubs,
          the bug zoo, the example submissions
bench     what measures: LoRA's costs for the benchmark page, and the workbook's own speed
"""

#: The subpackages in dependency order: each may import from itself and those before it only.
LAYERS = ("core", "content", "grading", "quality", "bench")
