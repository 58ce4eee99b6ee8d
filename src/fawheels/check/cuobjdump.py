"""The second reader: NVIDIA's cuobjdump (the toolkit's, else a pinned one from PyPI), its listing parsed into
the entries our parser gives, and the comparison of the two readings (docs/readers.md)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fawheels._util.errors import InspectError
from fawheels._util.paths import install_once
from fawheels._util.runner import PIPE, SubprocessError, call, pip_install_into, spawn
from fawheels.check.binary import _ELF_MAGIC, EM_CUDA, CodeEntry
from fawheels.check.wheelzip import (
    is_wheel,
    iter_members,
    open_wheel,
)

CUOBJDUMP_PACKAGE = "nvidia-cuda-cuobjdump"


CUOBJDUMP_PIN = "13.2.86"  # reads the binaries of CUDA 12.x and 13.x; the first release on PyPI


CUOBJDUMP_TIMEOUT_S = 1800  # per pass; libtorch_cuda.so (0.5 GB) takes about 35 s on 2 shared cores


@dataclass(frozen=True)
class Cuobjdump:
    """A cuobjdump that runs, and where it came from (recorded in verify reports)."""

    path: Path
    version: str  # 13.2.86
    origin: str  # FAWHEELS_CUOBJDUMP | PATH | toolkit | python-env | cache


def cuobjdump_cache_dir() -> Path:
    from fawheels._util.paths import cache_root

    return cache_root() / "tools" / f"cuobjdump-{CUOBJDUMP_PIN}"


def _pip_cuobjdump(root: Path) -> Path:
    return root / "nvidia" / "cu13" / "bin" / "cuobjdump"


def _candidates(toolkit: Path | None) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if env := os.environ.get("FAWHEELS_CUOBJDUMP"):
        found.append((Path(env), "FAWHEELS_CUOBJDUMP"))
    if toolkit is not None:
        found.append((toolkit / "bin" / "cuobjdump", "toolkit"))
    if on_path := shutil.which("cuobjdump"):
        found.append((Path(on_path), "PATH"))
    found.append((Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump", "toolkit"))
    spec = importlib.util.find_spec("nvidia")  # namespace package of NVIDIA's PyPI wheels
    if spec is not None and spec.submodule_search_locations:
        found += [(Path(p) / "cu13" / "bin" / "cuobjdump", "python-env") for p in spec.submodule_search_locations]
    found.append((_pip_cuobjdump(cuobjdump_cache_dir()), "cache"))
    return found


def find_cuobjdump(toolkit: Path | None = None) -> Path | None:
    """cuobjdump from FAWHEELS_CUOBJDUMP, the toolkit, PATH, CUDA_HOME, this Python's
    nvidia-cuda-cuobjdump, or the fawheels cache (never installs anything)."""
    for candidate, origin in _candidates(toolkit):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            if origin == "cache":  # `fawheels cache` shows it as used, and prune --older-than keeps it
                from fawheels._util.paths import mark_used

                mark_used(cuobjdump_cache_dir())
            return candidate
    return None


def cuobjdump_version(exe: Path) -> str:
    """`cuobjdump --version` -> 13.2.86; InspectError when it does not run."""
    try:
        out = call([exe, "--version"], timeout=60, quiet=True).stdout
    except (OSError, SubprocessError) as exc:
        raise InspectError(f"{exe} does not run: {exc}") from None
    m = re.search(r"V(\d+\.\d+\.\d+)", out)
    if m is None:
        raise InspectError(f"{exe} --version says no version: {out.strip()[:200]!r}")
    return m.group(1)


def provision_cuobjdump() -> Path:
    """Install the pinned nvidia-cuda-cuobjdump once into the fawheels cache (like a pip toolkit)."""
    root = cuobjdump_cache_dir()
    requirement = f"{CUOBJDUMP_PACKAGE}=={CUOBJDUMP_PIN}"

    def install() -> None:
        pip_install_into(root, [requirement], what=f"pip install {requirement}", error=InspectError, capture=True)

    install_once(root, CUOBJDUMP_PIN, install, note=f"installing {requirement} from PyPI into {root} (once)")
    return _pip_cuobjdump(root)


def locate_cuobjdump(toolkit: Path | None = None, *, install: bool = True) -> tuple[Cuobjdump | None, str]:
    """A cuobjdump that runs (installing the pinned one into the cache when none is found and
    `install`), or None and why not."""
    problems: list[str] = []
    for path, origin in _candidates(toolkit):
        if path.is_file() and os.access(path, os.X_OK):
            try:
                return Cuobjdump(path, cuobjdump_version(path), origin), ""
            except InspectError as exc:
                problems.append(str(exc))
    if not install:
        return None, "; ".join(problems) or "no cuobjdump found and installing it was not allowed"
    try:
        path = provision_cuobjdump()
        return Cuobjdump(path, cuobjdump_version(path), "cache"), ""
    except InspectError as exc:
        problems.append(
            str(exc).splitlines()[0]
            + (" (no PyPI or no wheel for this platform?)" if "pip install" in str(exc) else "")
        )
    return None, "; ".join(problems)


_CUOBJ_HEADER = re.compile(r"^Fatbin (elf|ptx|nvvm) code:")


_CUOBJ_CUBIN = re.compile(r"^\d+-bit ELF: .*\bsm=(\d+[af]?)")


_CUOBJ_LISTED = re.compile(r"^(PTX|ELF) file\s+\d+: .*\.(sm_\d+[af]?)\.(?:ptx|cubin)$")


_PTX_TEXT_VERSION = re.compile(r"^\.version\s+(\d+)\.(\d+)")


def parse_cuobjdump(lines: Iterable[str], file: str) -> list[CodeEntry]:
    """Entries from `cuobjdump -elf -ptx` (or `-res-usage`) output (pure). Sizes are not printed; they
    read as 0. A PTX entry's ISA is its text's `.version` when the text was dumped, else its header's."""
    entries: list[CodeEntry] = []
    cur: dict[str, str] | None = None

    def flush() -> None:
        if cur is not None and "arch" in cur:
            kind = {"elf": "sass", "ptx": "ptx"}.get(cur["kind"], "lto")
            isa = cur.get("isa", cur.get("version")) if kind == "ptx" else None
            entries.append(
                CodeEntry(
                    file=file,
                    kind=kind,
                    arch=cur["arch"],
                    ptx_isa=isa,
                    code_version=cur.get("version", ""),
                    compression=cur.get("compression", "none"),
                    size=0,
                    uncompressed_size=0,
                    section=cur.get("section", ".nv_fatbin"),
                )
            )

    standalone, in_comment = True, False
    for line in lines:
        if in_comment:  # inside a PTX block comment: nothing is a directive until it closes
            in_comment = "*/" not in line
            continue
        in_comment = "/*" in line and "*/" not in line.rsplit("/*", 1)[1]
        header = _CUOBJ_HEADER.match(line)
        if header:
            flush()
            cur, standalone = {"kind": header.group(1)}, False
        elif standalone and (m := _CUOBJ_CUBIN.match(line)):
            # a cubin given directly: no fatbin header, the suffix is in the recorded ptxas arguments
            cur = {"kind": "elf", "arch": f"sm_{m.group(1)}", "section": ""}
            abi = re.search(r"ABI=(\d+)", line)
            cur["version"] = abi.group(1) if abi else ""
        elif cur is None:
            continue
        elif m := re.match(r"^arch = (\w+)", line):
            cur["arch"] = m.group(1)
        elif m := re.match(r"^code version = \[(\d+),(\d+)\]", line):
            cur["version"] = f"{m.group(1)}.{m.group(2)}"
        elif (m := _PTX_TEXT_VERSION.match(line)) and "isa" not in cur:
            cur["isa"] = f"{m.group(1)}.{m.group(2)}"
        elif line.startswith("compressed"):
            cur["compression"] = "compressed"
        elif standalone and (m := re.search(r"Tool Command Line Arguments: .*-arch (sm_\d+[af]?)", line)):
            cur["arch"] = m.group(1)
    flush()
    return entries


def parse_cuobjdump_listing(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(kind, arch) of every entry `cuobjdump -lelf -lptx` lists (pure). The listing drops the `f` of
    SASS archs (sm_120f SASS lists as sm_120) and shows no PTX ISA."""
    listed = []
    for line in lines:
        if m := _CUOBJ_LISTED.match(line.strip()):
            listed.append(("ptx" if m.group(1) == "PTX" else "sass", m.group(2)))
    return listed


def _keep(line: str) -> bool:
    """The lines of a dump we parse: entry headers, not the sections and code that follow them (and the
    lines that open or close a PTX block comment, which may hold a `.version` that is none)."""
    return line.startswith(("Fatbin ", "arch =", "code version", "compressed", ".version", ".target")) or (
        _CUOBJ_CUBIN.match(line) is not None or "Tool Command Line" in line or "/*" in line or "*/" in line
    )


def _run_cuobjdump(exe: Path, args: Sequence[str], path: Path, label: str) -> list[str]:
    """cuobjdump's output, streamed and filtered to the header lines (a full dump of a large
    extension is gigabytes of text); no device code at all reads as no lines. Its messages go to a
    file, so a flood of warnings cannot block it while we read its output."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = spawn([exe, *args, path], stdout=PIPE, stderr=errors, quiet=True)
        except OSError as exc:
            raise InspectError(f"{label}: cuobjdump does not run: {exc}") from None
        assert proc.stdout is not None
        timer = threading.Timer(CUOBJDUMP_TIMEOUT_S, proc.kill)  # a binary that makes it spin must not hang us
        timer.start()
        try:
            kept = [
                line.rstrip("\n") for line in proc.stdout if _keep(line) or line.startswith(("ELF file", "PTX file"))
            ]
            code = proc.wait()
        finally:
            timer.cancel()
        errors.seek(0)
        err = errors.read(64 << 10).decode("utf-8", errors="replace")
    if code < 0:
        raise InspectError(f"{label}: cuobjdump {' '.join(args)} did not finish in {CUOBJDUMP_TIMEOUT_S} s (killed)")
    if code != 0:
        if "does not contain device code" in err:
            return []
        raise InspectError(f"{label}: cuobjdump {' '.join(args)} failed: {err.strip()[:1000]}")
    return kept


def _is_cubin(path: Path) -> bool:
    """A standalone cubin (ELF for EM_CUDA), which cuobjdump reads without fatbin headers."""
    with path.open("rb") as fh:
        head = fh.read(20)
    return head[:4] == _ELF_MAGIC and len(head) == 20 and struct.unpack_from("<H", head, 18)[0] == EM_CUDA


def _family_capable(arch: str) -> bool:
    """SASS of sm_100 and later may carry the `f` suffix, which `-lelf` does not print."""
    m = re.fullmatch(r"sm_(\d+)[af]?", arch)
    return m is not None and int(m.group(1)) >= 100


def cuobjdump_read(
    path: Path, label: str | None = None, tool: Path | None = None, expect: Iterable[CodeEntry] = ()
) -> list[CodeEntry]:
    """Entries of one file as cuobjdump reads them, at low cost. One pass lists every entry:
    `-lelf -lptx`, or `-res-usage` (the entry headers, without the code) when SASS of a family-capable
    arch (sm_100 and later) is expected or listed, since only that shows its true `f` suffix. PTX texts
    are dumped (`-ptx`) only when PTX is listed, for their `.version`; a standalone cubin needs `-elf`.
    `expect` (our parser's reading) only chooses the cheaper pass; what cuobjdump reads is its own."""
    exe = tool or find_cuobjdump()
    if exe is None:
        raise InspectError("cuobjdump not found", hint=f"pip install {CUOBJDUMP_PACKAGE}=={CUOBJDUMP_PIN}")
    file = label or str(path)
    if _is_cubin(path):
        return parse_cuobjdump(_run_cuobjdump(exe, ["-elf"], path, file), file)
    headers: list[CodeEntry] | None = None
    if any(e.kind == "sass" and _family_capable(e.arch) for e in expect):
        headers = parse_cuobjdump(_run_cuobjdump(exe, ["-all", "-res-usage"], path, file), file)
        listed = [(e.kind, e.arch) for e in headers if e.kind != "lto"]
    else:
        listed = parse_cuobjdump_listing(_run_cuobjdump(exe, ["-all", "-lelf", "-lptx"], path, file))
        if any(kind == "sass" and _family_capable(arch) for kind, arch in listed):
            # the header dump names every SASS entry again, now with its suffix; should it ever list
            # other entries than the listing, the comparison with our parser shows it
            headers = parse_cuobjdump(_run_cuobjdump(exe, ["-all", "-res-usage"], path, file), file)
    sass = (
        [e for e in headers if e.kind == "sass"]
        if headers is not None
        else [CodeEntry(file, "sass", a, None, "", "none", 0, 0) for kind, a in listed if kind == "sass"]
    )
    ptx: list[CodeEntry] = []
    if any(kind == "ptx" for kind, _arch in listed):
        ptx = [e for e in parse_cuobjdump(_run_cuobjdump(exe, ["-all", "-ptx"], path, file), file) if e.kind == "ptx"]
    return sass + ptx


def cuobjdump_file(path: Path, label: str | None = None, tool: Path | None = None) -> list[CodeEntry]:
    """Kept for callers of the earlier name: the same as cuobjdump_read."""
    return cuobjdump_read(path, label, tool)


def cuobjdump_bytes(
    data: bytes, label: str, tool: Path | None = None, expect: Iterable[CodeEntry] = ()
) -> list[CodeEntry]:
    """cuobjdump's reading of bytes held in memory (a wheel member), through a private temp file."""
    with tempfile.TemporaryDirectory(prefix="fawheels-") as tmp:
        member = Path(tmp) / "member"
        member.write_bytes(data)
        return cuobjdump_read(member, label, tool, expect)


def cuobjdump_path(path: Path, tool: Path | None = None) -> list[CodeEntry]:
    """The cuobjdump reader over the same inputs as read_path (every member holding CUDA code)."""
    if not is_wheel(path):
        return cuobjdump_read(path, tool=tool)
    entries: list[CodeEntry] = []
    with open_wheel(path) as zf:
        for obj_member in iter_members(zf, path.name):
            if obj_member.data is not None and obj_member.fatbin_at is None:
                entries += cuobjdump_bytes(obj_member.data, obj_member.name, tool)
    return entries


def comparable(entry: CodeEntry) -> tuple[str, str, str, str | None]:
    """What both readers must agree on: member, kind, arch with its a/f suffix, PTX ISA."""
    return (entry.file, entry.kind, entry.arch, entry.ptx_isa)


def _reading(entries: Counter[tuple[str, str, str, str | None]]) -> str:
    parts = [
        f"{kind} {arch}" + (f" (ISA {isa})" if isa else "") + (f" x{n}" if n > 1 else "")
        for (_f, kind, arch, isa), n in sorted(entries.items(), key=lambda kv: str(kv[0]))
    ]
    return ", ".join(parts) or "no CUDA code"


def disagreements(ours: Iterable[CodeEntry], theirs: Iterable[CodeEntry]) -> list[str]:
    """Per file, where the two readings differ, naming both readings (LTO IR excluded: cuobjdump
    lists no NVVM entries)."""
    a = Counter(comparable(e) for e in ours if e.kind != "lto")
    b = Counter(comparable(e) for e in theirs if e.kind != "lto")
    problems = []
    for file in sorted({k[0] for k in a} | {k[0] for k in b}):
        mine = Counter({k: n for k, n in a.items() if k[0] == file})
        other = Counter({k: n for k, n in b.items() if k[0] == file})
        if mine != other:
            problems.append(f"{file}: fawheels reads {_reading(mine)}; cuobjdump reads {_reading(other)}")
    return problems
