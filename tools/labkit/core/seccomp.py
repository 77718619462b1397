"""A seccomp filter that lets a sandboxed process start threads but no other process.

bubblewrap applies it (`bwrap --seccomp FD`) to the judge's worker, which has no use for processes of
its own: so a submission cannot multiply itself, however it tries, and the machine's process table
is safe from it (RLIMIT_NPROC would not do: it does not hold for root, whom a grading container
often runs as). The program is classic BPF over struct seccomp_data:

- another architecture than the machine's own (32-bit system calls on x86_64): refused, EPERM;
- x86_64's x32 system calls (number with bit 30 set): refused;
- fork and vfork: refused; clone without CLONE_THREAD: refused (a thread is clone with it);
- clone3, whose flags sit in memory a filter cannot read: ENOSYS, so that the C library falls back
  to clone for its threads;
- everything else: allowed.
"""

from __future__ import annotations

import os
import platform
import struct

# BPF instruction classes and fields (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW
_ERRNO = 0x00050000  # SECCOMP_RET_ERRNO | errno
_EPERM, _ENOSYS = 1, 38
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
# (AUDIT_ARCH_*, {"clone", "clone3", "fork", "vfork"} numbers) for the machines the workbook runs on.
_ARCHES = {
    "x86_64": (0xC000003E, {"clone": 56, "fork": 57, "vfork": 58, "clone3": 435}),
    "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435}),
}


def program(machine: str | None = None) -> bytes | None:
    """The filter for a machine (platform.machine() by default), as bwrap reads it; None where unknown."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        return None
    arch, numbers = _ARCHES[machine]
    # (opcode, k, label if true, label if false); a label None falls through to the next instruction.
    code: list[tuple[int, int, str | None, str | None]] = [
        (_LD_W_ABS, 4, None, None),  # seccomp_data.arch
        (_JEQ_K, arch, None, "deny"),
        (_LD_W_ABS, 0, None, None),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        code.append((_JGE_K, _X32_BIT, "deny", None))
    code += [(_JEQ_K, numbers[name], "deny", None) for name in ("fork", "vfork") if name in numbers]
    code += [
        (_JEQ_K, numbers["clone3"], "enosys", None),
        (_JEQ_K, numbers["clone"], None, "allow"),
        (_LD_W_ABS, 16, None, None),  # seccomp_data.args[0], its low 32 bits: clone's flags
        (_JSET_K, _CLONE_THREAD, "allow", "deny"),
    ]
    returns = {"deny": _ERRNO | _EPERM, "enosys": _ERRNO | _ENOSYS, "allow": _ALLOW}
    at = {label: len(code) + i for i, label in enumerate(returns)}

    def skip(label: str | None, i: int) -> int:
        return 0 if label is None else at[label] - i - 1

    ops = [struct.pack("HBBI", op, skip(yes, i), skip(no, i), k) for i, (op, k, yes, no) in enumerate(code)]
    ops += [struct.pack("HBBI", _RET_K, 0, 0, value) for value in returns.values()]
    return b"".join(ops)


def program_fd(machine: str | None = None) -> int | None:
    """A file descriptor holding program(), at offset 0, for `bwrap --seccomp FD`; None where unknown."""
    code = program(machine)
    if code is None:
        return None
    fd = os.memfd_create("labkit-seccomp", 0)
    os.write(fd, code)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
