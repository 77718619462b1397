"""What every job stands on: the lab's facts, and running the graded tests on a candidate."""
