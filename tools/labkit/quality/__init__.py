"""What maintainers run to trust the lab: the verification and the bug zoo."""
