"""Variant facts: what an installer would select a wheel on, read from its code, and the choice made with them.

For each published wheel: the CUDA it was compiled with, the CUDA runtime major it links, its SASS
(`NN_real`) and PTX (`NN_virtual`, with ISA), and the oldest driver that loads all of it, derived from the
code: a CUDA N runtime needs that major's minor-version-compatibility driver (12: 525.60.13, 13: 580.65.06)
and every PTX needs a driver that knows its ISA. These facts go into the index (a per-root
`fawheels-variants.json` beside PEP 691's `index.json`, and `<name>-<version>-variants.json` files in the
form of the PEP 825 *draft*), onto the HTML root page, and into `fawheels compat --index`, which picks the
wheel of an index that loads on a machine or says why none does.

Properties use NVIDIA's variant provider names: `nvidia :: cuda_version_lower_bound :: X.Y` (the machine's
driver must support CUDA >= X.Y) and `nvidia :: sm_arch :: 120_real` / `80_virtual`. No upper bound is
written: a newer driver runs older CUDA code.

Pure first (facts, properties, rendering, choosing); fetching an index's manifest and printing come last.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shlex
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from fawheels._util import jsondoc, names
from fawheels._util.errors import ConfigError, InspectError
from fawheels._util.files import read_regular, replacing
from fawheels._util.names import ErrorClass
from fawheels._util.show import one_line, say
from fawheels.check.binary import CodeObject
from fawheels.matrix import cudafacts as cf
from fawheels.matrix.cudafacts import Arch, Version
from fawheels.matrix.loading import code_min_driver, cudart_major, loads_on

# The PEP 825 draft's metadata format version (versions 0.x are drafts by that PEP's own rule).
PEP825_SCHEMA = "https://variants-schema.wheelnext.dev/v0.0.3.json"
PER_ROOT_FILE = "fawheels-variants.json"
NAMESPACE = "nvidia"


@dataclass(frozen=True)
class CodeFacts:
    """What a wheel's code needs of a machine."""

    cuda: str  # toolkit it was compiled with, "12.8"
    cuda_runtime_major: int  # libcudart.so.N it links
    sass: tuple[str, ...]  # sm_120, …
    ptx: tuple[tuple[str, str], ...]  # (compute_80, ISA "8.7"), …
    min_driver: str  # oldest driver that loads every module

    def properties(self) -> dict[str, list[str]]:
        """nvidia :: feature :: values, as the PEP 825 draft nests them (values sorted)."""
        lower = cf.cuda_of_driver(Version.parse(self.min_driver))
        arches = [f"{Arch.parse(a).major}{Arch.parse(a).minor}{Arch.parse(a).suffix}_real" for a in self.sass]
        arches += [f"{Arch.parse(a).major}{Arch.parse(a).minor}{Arch.parse(a).suffix}_virtual" for a, _ in self.ptx]
        props = {"sm_arch": sorted(set(arches))}
        if lower is not None:
            props["cuda_version_lower_bound"] = [f"{lower.major}.{lower.minor}"]
        return dict(sorted(props.items()))

    def property_lines(self) -> list[str]:
        return [
            f"{NAMESPACE} :: {feature} :: {value}" for feature, values in self.properties().items() for value in values
        ]

    @property
    def label(self) -> str:
        """A PEP 825 variant label (`^[0-9a-z_.]{1,16}$`) that names exactly this property set."""
        digest = hashlib.sha256(json.dumps(self.properties(), sort_keys=True).encode()).hexdigest()
        return f"fw{digest[:10]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "cuda": self.cuda,
            "cuda_runtime_major": self.cuda_runtime_major,
            "sass": list(self.sass),
            "ptx": [{"arch": a, "isa": isa} for a, isa in self.ptx],
            "min_driver": self.min_driver,
            "variant_label": self.label,
            "variant_properties": self.property_lines(),
        }


def code_facts(objects: Sequence[CodeObject], build_info: Mapping[str, Any]) -> CodeFacts:
    """Facts from the wheel's binaries (SASS, PTX ISA, libcudart) and its build-info (toolkit)."""
    sass: set[str] = set()
    ptx: set[tuple[str, str]] = set()
    majors = set()
    for obj in objects:
        if (m := cudart_major(obj.needed)) is not None:
            majors.add(m)
        for e in obj.entries:
            if e.relocatable or e.kind not in ("sass", "ptx"):
                continue
            if e.kind == "sass":
                sass.add(Arch.parse(e.arch).sm)
            else:
                ptx.add((Arch.parse(e.arch).compute, e.ptx_isa or "0"))
    major = max(majors) if majors else int(build_info.get("cuda_runtime_major") or 0)
    if not major:
        raise InspectError("the wheel names no CUDA runtime (no libcudart.so.N, no cuda_runtime_major)")

    def key(arch: str) -> tuple[int, int]:
        return Arch.parse(arch).cc

    return CodeFacts(
        cuda=str((build_info.get("toolchain") or {}).get("cuda") or f"{major}.0"),
        cuda_runtime_major=major,
        sass=tuple(sorted(sass, key=key)),
        ptx=tuple(sorted(ptx, key=lambda p: key(p[0]))),
        min_driver=str(code_min_driver(major, (isa for _, isa in ptx))),
    )


# ----------------------------------------------------------------------------- index files (pure)


def render_per_root(root: str, records: Iterable[Mapping[str, Any]]) -> str:
    """`<root>/simple/fawheels-variants.json`: every wheel of one root with its variant facts."""
    wheels = []
    for r in sorted(records, key=lambda r: (r["project"], r["filename"])):
        if r.get("variant") != root:
            continue
        facts = r.get("facts")
        wheels.append(
            {
                "filename": r["filename"],
                "url": f"{r['project']}/{r['filename']}",
                "project": r["project"],
                "version": r["version"],
                "sha256": r["sha256"],
                "target": r.get("target"),
                "torch": r.get("torch"),
                "python": r.get("python"),
                **(facts if facts else {"facts": None}),
            }
        )
    doc = {
        "schema": 1,
        "root": root,
        "note": "fawheels variant facts; variant_properties use NVIDIA's provider names as in the PEP 825/850 "
        "drafts (draft format, may change)",
        "wheels": wheels,
    }
    return json.dumps(doc, indent=1) + "\n"


def pep825_files(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(root, project, file name) -> `<name>-<version>-variants.json` in the PEP 825 draft form (v0.0.3).

    fawheels wheels are not variant wheels yet (their file names carry no variant label): each of these
    files maps the label of a wheel's property set to those properties, ready for when installers read them."""
    groups: dict[tuple[str, str, str], dict[str, dict[str, dict[str, list[str]]]]] = {}
    for r in records:
        facts = r.get("facts")
        if not facts:
            continue
        name, version = r["filename"].split("-")[:2]
        key = (r["variant"], r["project"], f"{name}-{version}-variants.json")
        props: dict[str, list[str]] = {}
        for line in facts["variant_properties"]:
            _ns, feature, value = line.split(" :: ")
            props.setdefault(feature, []).append(value)
        groups.setdefault(key, {})[facts["variant_label"]] = {NAMESPACE: props}
    return {
        key: json.dumps(
            {
                "$schema": PEP825_SCHEMA,
                "default-priorities": {
                    "namespace": [NAMESPACE],
                    "feature": {NAMESPACE: ["cuda_version_lower_bound", "sm_arch"]},
                },
                "variants": dict(sorted(variants.items())),
            },
            indent=1,
        )
        + "\n"
        for key, variants in groups.items()
    }


# ----------------------------------------------------------------------------- choosing (pure)


@dataclass(frozen=True)
class Fit:
    record: Mapping[str, Any]
    ok: bool
    reason: str
    rank: tuple[int, ...] = ()


def gpu_driver_floor(cc: tuple[int, int]) -> tuple[Version, Version] | None:
    """(driver, CUDA) a GPU needs at all, for GPUs newer than CUDA 12.0 (a driver older than the first CUDA
    release that knows the arch does not know the GPU)."""
    try:
        first = cf.arch_support(Arch(cc[0], cc[1])).first_cuda
    except ConfigError:
        return None
    if first <= Version.parse("12.0"):
        return None
    return cf.toolkit(first).min_driver, first


def judge(record: Mapping[str, Any], cc: tuple[int, int], driver: Version) -> Fit:
    """Does this published wheel load on a GPU of compute capability `cc` with `driver`? The rule is compat's
    (`loads_on`), over the wheel's recorded facts: what `compat WHEEL` says of the wheel's binaries."""
    facts = record.get("facts")
    if not facts:
        return Fit(record, False, "published without variant facts (publish it again with this fawheels)")
    need = Version.parse(facts["min_driver"])
    runtime = facts["cuda_runtime_major"]
    sass = [Arch.parse(a) for a in facts["sass"]]
    ptx = [(Arch.parse(p["arch"]), Version.parse(p["isa"])) for p in facts["ptx"]]
    load = loads_on(sass, ptx, cc, driver, runtime)
    have = " ".join(facts["sass"] + [p["arch"] for p in facts["ptx"]])
    if load.error == "cudaErrorNoKernelImageForDevice":
        return Fit(record, False, f"no SASS runs on {cc[0]}.{cc[1]} and no PTX JIT-compiles for it (has {have})")
    if load.error == "cudaErrorInsufficientDriver":
        return Fit(record, False, f"links the CUDA {runtime} runtime, which needs driver >= {load.needed_driver}")
    assert load.arch is not None
    if load.how == "ptx-jit":
        if not load.ok:
            return Fit(
                record,
                False,
                f"only {load.arch.compute} PTX (ISA {load.isa}) for {cc[0]}.{cc[1]}, which needs driver "
                f">= {load.needed_driver or 'newer than any known'}",
            )
        return Fit(
            record,
            True,
            f"{load.arch.compute} PTX (ISA {load.isa}) JIT-compiled by the driver; needs driver >= {need}",
            (0, *_cuda_rank(facts["cuda"], driver)),
        )
    exact = load.how == "exact-sass"
    return Fit(
        record,
        True,
        f"{load.arch.sm} SASS {'matches' if exact else 'runs on'} {cc[0]}.{cc[1]}; the CUDA "
        f"{runtime} runtime needs driver >= {cf.MINOR_COMPAT_MIN_DRIVER.get(runtime)}",
        (2 if exact else 1, *_cuda_rank(facts["cuda"], driver)),
    )


def _cuda_rank(cuda: str, driver: Version) -> tuple[int, ...]:
    """Prefer a wheel compiled for a CUDA the driver supports natively (no reliance on minor-version
    compatibility), then the newest."""
    built = Version.parse(cuda)
    native = cf.cuda_of_driver(driver)
    return (int(native is not None and built <= native), *built.parts)


@dataclass(frozen=True)
class Choice:
    project: str
    best: Fit | None
    fits: tuple[Fit, ...]
    why_none: str = ""


def choose(
    records: Sequence[Mapping[str, Any]], cc: tuple[int, int], driver: Version, project: str | None = None
) -> list[Choice]:
    """Per project: the wheel to install (exact SASS first, then compatible SASS, then PTX; newest CUDA), or
    a sentence saying why none loads."""
    projects = sorted({r["project"] for r in records if project is None or r["project"] == project})
    out = []
    floor = gpu_driver_floor(cc)
    for p in projects:
        fits = tuple(judge(r, cc, driver) for r in records if r["project"] == p)
        good = [f for f in fits if f.ok]
        if floor and driver < floor[0]:
            out.append(
                Choice(
                    p,
                    None,
                    fits,
                    f"a {cc[0]}.{cc[1]} GPU needs a driver of CUDA >= {floor[1]} "
                    f"(>= {floor[0]}); driver {driver} does not know it, so no wheel "
                    "can load: update the driver",
                )
            )
            continue
        if good:
            out.append(Choice(p, max(good, key=lambda f: f.rank), fits))
            continue
        out.append(Choice(p, None, fits, _why_none(fits, cc, driver)))
    return out


def _why_none(fits: Sequence[Fit], cc: tuple[int, int], driver: Version) -> str:
    cuda = cf.cuda_of_driver(driver)
    if cuda is None:
        return f"driver {driver} is older than every CUDA 12/13 release: no wheel of this index can load"
    loadable_majors = sorted(m for m, need in cf.MINOR_COMPAT_MIN_DRIVER.items() if driver >= need)
    # the wheels with code for this GPU: if the CUDA runtime is what stops every one of them, say so
    has_code = [f for f in fits if not f.reason.startswith("no SASS runs")]
    if has_code and all("runtime" in f.reason for f in has_code):
        majors = " or ".join(f"CUDA {m}.x" for m in loadable_majors) or "no CUDA 12/13"
        return f"driver {driver} (CUDA {cuda}): only {majors} wheels can load; this index has none for {cc[0]}.{cc[1]}"
    return f"no wheel of this index loads on {cc[0]}.{cc[1]} with driver {driver} (CUDA {cuda})"


# ----------------------------------------------------------------------------- I/O


def _manifest_url(index: str) -> tuple[str | None, Path | None]:
    """(http(s) URL, None) or (None, local directory) of `--index`; refused when it is neither."""
    hint = "--index takes the index root that fawheels publish wrote (a directory, or its http(s) URL)"
    if any(unicodedata.category(c) == "Cc" for c in index):
        raise ConfigError(f"--index {one_line(index)}: a control character (CR, LF, …) in a location", hint=hint)
    parts = urlsplit(index)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"--index {index}: no host in the URL", hint=hint)
        return (index if index.endswith("/") else index + "/"), None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):  # as publish: file://server/share is not this machine's /share
            raise ConfigError(
                f"--index {index}: a file URL on another host ({parts.netloc})",
                hint="mount it and pass the local directory, or use the server's http(s) URL",
            )
        return None, Path(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # "C:" aside, `idx:1` is an unknown scheme, not a folder name
        raise ConfigError(
            f"--index {index}: unsupported scheme {parts.scheme!r}",
            hint=f"a directory whose name holds ':' is written ./{index}; else use an http(s) URL",
        )
    return None, Path(index)


def read_manifest(index: str) -> tuple[list[dict[str, Any]], str]:
    """The records of an index's `wheels.json` (directory, file:// or http(s) URL), each checked against its
    grammar (index.parse_manifest), and the index base URL. Reads at most MAX_MANIFEST bytes."""
    from fawheels.publish.records import MANIFEST, MAX_MANIFEST, parse_manifest

    hint = "--index takes the index root that fawheels publish wrote (it holds wheels.json)"
    url, path = _manifest_url(index)
    if url is not None:
        base, where = url, urljoin(url, MANIFEST)
        try:
            with urllib.request.urlopen(where, timeout=60) as resp:
                data = resp.read(MAX_MANIFEST + 1)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise ConfigError(f"cannot read {where}: {getattr(exc, 'reason', exc)}", hint=hint) from None
        if len(data) > MAX_MANIFEST:
            raise ConfigError(f"{where}: answer larger than {MAX_MANIFEST} bytes, not a manifest", hint=hint)
    else:
        assert path is not None
        base, where = path.resolve().as_uri() + "/", str(path / MANIFEST)
        data = read_regular(path / MANIFEST, MAX_MANIFEST, ConfigError)
    return [r.to_json() for r in parse_manifest(data, where, ConfigError)], base


def fetch_wheel(index: str, record: Mapping[str, Any], dest: Path, error: ErrorClass) -> Path:
    """A wheel that `read_manifest` listed, copied from the index into `dest` whole or not at all: the same
    reading of `--index` as the manifest's, its path confined to the index's layout, its bytes checked against
    the manifest's sha256 before the file appears. Failures are `error`s."""
    parts = (str(record["variant"]), "simple", str(record["project"]), str(record["filename"]))
    url, root = _manifest_url(index)
    out = names.under(dest, parts[-1], field="wheel file name", error=error)
    digest = hashlib.sha256()
    try:
        with replacing(out) as tmp, tmp.open("wb") as f:
            if url is not None:
                source: Any = urllib.request.urlopen(urljoin(url, "/".join(parts)), timeout=600)
            else:
                assert root is not None
                source = names.under(root, *parts, field="index path", error=error).open("rb")
            with source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != record["sha256"]:
                raise error(f"{parts[-1]} from {index} does not match the index's sha256: refusing")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise error(f"cannot fetch {parts[-1]} from {index}: {getattr(exc, 'reason', exc)}") from None
    return out


def install_command(base: str, record: Mapping[str, Any]) -> str:
    """The `pip install` line for a chosen wheel, from validated parts only, each quoted for a POSIX shell."""
    requirement = f"{record['project']}=={record['version']}"
    return f"pip install --index-url {shlex.quote(base + record['variant'] + '/simple')} {shlex.quote(requirement)}"


INDEX_CHOICE_SCHEMA = 1  # `compat --index URL --json`: {schema, ok, gpu, driver, projects}


def index_command(
    index: str, *, gpu: str | None, driver: str | None, project: str | None = None, as_json: bool = False
) -> int:
    """`fawheels compat --index URL [--gpu G --driver V]`: exit 0 when a wheel fits, 1 when none does."""
    from fawheels.check.machine import resolve

    machine = resolve(gpu, driver)
    cc, version = machine.cc, machine.driver
    records, base = read_manifest(index)
    choices = choose(records, cc, version, project)
    if as_json:
        say(
            jsondoc.dumps(
                {
                    "schema": INDEX_CHOICE_SCHEMA,
                    "ok": any(c.best for c in choices),
                    "gpu": f"{cc[0]}.{cc[1]}",
                    "driver": str(version),
                    "projects": [
                        {
                            "project": c.project,
                            "wheel": c.best.record["filename"] if c.best else None,
                            "root": c.best.record["variant"] if c.best else None,
                            "reason": c.best.reason if c.best else c.why_none,
                            "others": [{"wheel": f.record["filename"], "ok": f.ok, "reason": f.reason} for f in c.fits],
                        }
                        for c in choices
                    ],
                }
            )
        )
    else:
        cuda = cf.cuda_of_driver(version)
        say(f"GPU {cc[0]}.{cc[1]}, driver {version} (CUDA {cuda or 'older than 12.0'}), index {index}")
        if not choices:
            say(f"  no project{' ' + project if project else ''} in this index")
        for c in choices:
            if c.best:
                r = c.best.record
                say(f"  {c.project}: {r['filename']} ({r['variant']}): {c.best.reason}")
                say(f"    {install_command(base, r)}")
            else:
                say(f"  {c.project}: none fits: {c.why_none}")
            for f in c.fits:
                if f is not c.best:
                    say(f"    {'fits' if f.ok else 'no  '} {f.record['filename']}: {f.reason}")
    return 0 if any(c.best for c in choices) else 1
