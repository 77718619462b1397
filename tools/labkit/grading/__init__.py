"""What students and instructors run: check, grade, and what they judge with."""
