"""Integration tests of publish with real tools: the real verifier, pip and uv in fresh venvs, a killed
and concurrent publisher, pypiserver on loopback (marker `server`) and headless Chromium (marker `browser`).

Wheels: tests/support/wheelfactory.py's toy wheels, whose extension is compiled by the real nvcc (sm_120 SASS, about
two seconds) and imports without torch or a GPU; their reports come from the real `verify.write_report`.
Installs use `--no-deps`: the wheels require torch==2.14.*, which these tests never download.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest

from fawheels._util.files import TMP_MARK
from support.wheelfactory import compile_extension, nvcc, toy_wheel

# nvcc: the toy extension; server: an index served on loopback (http.server or pypiserver) and
# publishers run as real processes.
pytestmark = [pytest.mark.nvcc, pytest.mark.server]

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "fawheels.cli"]
PASSWORD = "s3cret-Upload-Pw"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a publisher: no index credentials unless a test passes them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FAWHEELS_INDEX_USER", "FAWHEELS_INDEX_PASSWORD", "TWINE_USERNAME", "TWINE_PASSWORD")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return {**env, **extra}


def fawheels(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env or clean_env(), timeout=300)


@pytest.fixture(scope="session")
def verify() -> ModuleType:
    try:
        from fawheels.check import verify as module
    except ImportError:
        pytest.skip("fawheels.check.verify has not landed yet")
    return module


@pytest.fixture(scope="session")
def ext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if nvcc() is None:
        pytest.skip("nvcc not found")
    return compile_extension(tmp_path_factory.mktemp("ext"))


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory, ext: Path, verify: ModuleType) -> dict[str, Path]:
    """Real-verified toy wheels: fatoy 0.9 and 1.0 for cu130, 1.0 for cu128, and a second project."""
    base = tmp_path_factory.mktemp("dist")
    wheels = {
        "cu130-0.9": toy_wheel(base / "a", version="0.9", extension=ext),
        "cu130-1.0": toy_wheel(base / "b", version="1.0", extension=ext),
        "cu128-1.0": toy_wheel(base / "c", version="1.0", cuda="12.8", extension=ext),
        "other-cu130": toy_wheel(base / "d", name="fatoy_extra", version="2.0", extension=ext),
    }
    for key, w in wheels.items():
        report = json.loads(Path(verify.write_report(w)).read_text())
        assert report["ok"] is True, f"real verify refused the toy wheel {key}: {report}"
    return wheels


def rebuilt(w: Path, ext: Path, tmp_path: Path, verify: ModuleType) -> Path:
    """A cu130 fatoy wheel of the same filename as w, other bytes (verified too)."""
    version = w.name.split("-")[1].split("+")[0]
    out = toy_wheel(tmp_path / "rebuilt", version=version, extension=ext, salt=" rebuilt")
    assert out.name == w.name and out.read_bytes() != w.read_bytes()
    verify.write_report(out)
    return out


# ------------------------------------------------------------------------------------- index validity


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_index_valid(root: Path, settled: bool = True) -> set[str]:
    """Every file a page or wheels.json lists exists and matches its hashes; returns what the pages list
    (`variant/filename`). Settled (no publisher midway), the pages, wheels.json and root page agree.

    Written independently of publish/index.py: it reads what pip and uv read.
    """
    listed: set[str] = set()
    for page in root.glob("*/simple/*/index.html"):
        parser = _Links()
        parser.feed(page.read_text())
        files = json.loads(page.with_name("index.json").read_text())["files"]
        assert len(files) == len(parser.links), page
        for a in parser.links:
            href = a["href"] or ""
            path, _, frag = href.partition("#")
            f = page.parent / unquote(path)
            assert f.is_file(), f"{page} lists {path}, which does not exist"
            assert frag == f"sha256={sha256(f)}", f"{f.name}: listed hash does not match the file"
            meta = f.with_name(f.name + ".metadata")
            assert a["data-dist-info-metadata"] == a["data-core-metadata"] == f"sha256={sha256(meta)}"
            listed.add(f"{page.parent.parent.parent.name}/{f.name}")
        for entry in files:
            assert entry["hashes"]["sha256"] == sha256(page.parent / unquote(entry["url"]))
    for variant_root in root.glob("*/simple"):
        projects = {p.parent.name for p in variant_root.glob("*/index.html")}
        assert projects == {p["name"] for p in json.loads((variant_root / "index.json").read_text())["projects"]}
    manifest = json.loads((root / "wheels.json").read_text())["wheels"]
    for w in manifest:
        f = root / w["variant"] / "simple" / w["project"] / w["filename"]
        assert f.is_file() and sha256(f) == w["sha256"], f"wheels.json lists {f}: missing or other bytes"
    if settled:
        assert {f"{w['variant']}/{w['filename']}" for w in manifest} == listed, "pages and wheels.json disagree"
        root_page = (root / "index.html").read_text()
        for item in listed:
            assert item.split("/", 1)[1] in root_page
    return listed


def venv(path: Path, pip: bool = True) -> Path:
    """A fresh venv; uv installs into one without pip, which is quicker to make."""
    subprocess.run(
        [sys.executable, "-m", "venv", *([] if pip else ["--without-pip"]), str(path)], check=True, timeout=300
    )
    return path / "bin" / "python"


def installed(python: Path) -> tuple[str, str, str]:
    code = "import importlib.metadata as m, fatoy; print(m.version('fatoy'), fatoy.VARIANT, fatoy.kernel_name())"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd="/")
    version, variant, kernel = out.stdout.split()
    return version, variant, kernel


def pip_install(python: Path, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            index_url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def uv_install(python: Path, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv not installed (pip install uv)")
    return subprocess.run(
        [uv, "pip", "install", "--python", str(python), "--no-deps", "--no-cache", "--index-url", index_url, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


# http.server plus the content negotiation docs/publishing.md configures in nginx: a client that asks for
# PEP 691 JSON gets the directory's index.json (and the path is logged to argv[3]), others index.html.
_STATIC_SERVER = """
import functools, http.server, sys
JSON = "application/vnd.pypi.simple.v1+json"
class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        if self.path.endswith("/") and JSON in self.headers.get("Accept", ""):
            with open(sys.argv[3], "a") as log:
                print(self.path, file=log)
            self.path += "index.json"
        return super().send_head()
    def guess_type(self, path):
        return JSON if str(path).endswith("/index.json") else super().guess_type(path)
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


def json_served(root: Path) -> list[str]:
    log = root.parent / "pep691.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static index directory served on loopback as docs/publishing.md says (see _STATIC_SERVER)."""
    root = tmp_path / "idx"
    root.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _STATIC_SERVER, str(port), str(root), str(tmp_path / "pep691.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc)
        yield root, f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def published(http_dir: tuple[Path, str], dist: dict[str, Path]) -> tuple[Path, str]:
    root, _ = http_dir
    r = fawheels("publish", *[str(w) for w in dist.values()], "--index", str(root))
    assert r.returncode == 0, r.stderr
    assert assert_index_valid(root) == {
        f"{k.split('-')[0] if k != 'other-cu130' else 'cu130'}/{w.name}" for k, w in dist.items()
    }
    return http_dir


# ------------------------------------------------------------------------------------- static index


def test_pip_and_uv_install_the_right_wheel_from_the_static_index(published: tuple[Path, str], tmp_path: Path) -> None:
    """Over file:// installers read the PEP 503 HTML pages; over http they ask for (and get) PEP 691 JSON."""
    root, url = published
    py = venv(tmp_path / "pip-venv")
    r = pip_install(py, f"file://{root}/cu130/simple", "fatoy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed(py) == ("1.0+cu130torch2.14", "cu130", "add_one")
    pyuv = venv(tmp_path / "uv-venv-file", pip=False)
    r = uv_install(pyuv, f"file://{root}/cu130/simple", "fatoy==0.9")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed(pyuv)[0] == "0.9+cu130torch2.14"
    assert json_served(root) == []

    py128 = venv(tmp_path / "pip-venv-128")
    r = pip_install(py128, f"{url}/cu128/simple", "fatoy==1.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed(py128)[:2] == ("1.0+cu128torch2.14", "cu128")
    assert json_served(root) == ["/cu128/simple/fatoy/"]
    pyuv = venv(tmp_path / "uv-venv", pip=False)
    r = uv_install(pyuv, f"{url}/cu130/simple", "fatoy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed(pyuv) == ("1.0+cu130torch2.14", "cu130", "add_one")
    assert json_served(root)[1:] == ["/cu130/simple/fatoy/"]


def test_installers_check_the_listed_hashes(
    published: tuple[Path, str], dist: dict[str, Path], ext: Path, tmp_path: Path, verify: ModuleType
) -> None:
    """Swap a listed wheel for other (valid) bytes behind the index's back: pip and uv refuse it."""
    root, url = published
    listed = root / "cu130" / "simple" / "fatoy" / dist["cu130-1.0"].name
    shutil.copyfile(rebuilt(dist["cu130-1.0"], ext, tmp_path, verify), listed)
    py = venv(tmp_path / "venv")
    r = pip_install(py, f"file://{root}/cu130/simple", "fatoy==1.0")
    assert r.returncode != 0 and "DO NOT MATCH THE HASHES" in r.stderr, r.stderr
    r = uv_install(py, f"{url}/cu130/simple", "fatoy==1.0")
    assert r.returncode != 0 and "hash" in r.stderr.lower(), r.stderr


def test_cli_refusals_leave_the_index_untouched(
    published: tuple[Path, str], dist: dict[str, Path], ext: Path, tmp_path: Path, verify: ModuleType
) -> None:
    root, _ = published
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    other = rebuilt(dist["cu130-1.0"], ext, tmp_path, verify)
    r = fawheels("publish", str(other), "--index", str(root))
    assert r.returncode == 8 and "another sha256" in r.stderr
    r = fawheels("publish", str(dist["cu130-1.0"]), "--index", str(root / "cu128"))
    assert r.returncode == 8 and "does not belong in the cu128 index" in r.stderr
    unverified = toy_wheel(tmp_path / "unverified", version="3.0", extension=ext)
    r = fawheels("publish", str(unverified), "--index", str(root))
    assert r.returncode == 8 and "no verify report" in r.stderr
    r = fawheels("publish", str(dist["cu130-1.0"]), "--index", str(root))
    assert r.returncode == 0 and "nothing to do" in r.stdout
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


# A publisher that stops, holding the lock, right before it renames a file named like argv[1] into place;
# it tells the test through argv[2] and waits there to be SIGKILLed.
_PAUSING_PUBLISHER = """
import os, sys, time
from pathlib import Path
point, flag = sys.argv[1], Path(sys.argv[2])
real_replace = os.replace
def replace(src, dst, *a, **k):
    if Path(dst).name.endswith(point):
        flag.write_text("paused")
        time.sleep(600)
    return real_replace(src, dst, *a, **k)
os.replace = replace
from fawheels.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("point", [".whl", "wheels.json", "index.html"])
def test_killed_publisher_leaves_a_valid_index_and_the_next_one_waits(
    point: str, published: tuple[Path, str], ext: Path, tmp_path: Path, verify: ModuleType
) -> None:
    root, _ = published
    new_a = toy_wheel(tmp_path / "a", version="1.1", extension=ext)
    new_b = toy_wheel(tmp_path / "b", version="1.2", extension=ext)
    for w in (new_a, new_b):
        verify.write_report(w)
    flag = tmp_path / "paused"
    a = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_PUBLISHER, point, str(flag), "publish", str(new_a), "--index", str(root)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert a.poll() is None, a.communicate()
            assert time.monotonic() < deadline, "the publisher never reached the kill point"
            time.sleep(0.05)
        b = subprocess.Popen(
            [*CLI, "publish", str(new_b), "--index", str(root)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert b.stdout is not None
        ready, _, _ = select.select([b.stdout], [], [], 120)
        assert ready, "the second publisher said nothing"
        assert "waiting for the lock" in b.stdout.readline(), b.communicate()
        assert b.poll() is None
        assert_index_valid(root, settled=False)  # readers see a valid index while a publisher is midway
        a.send_signal(signal.SIGKILL)
        a.wait()
        _, err = b.communicate(timeout=120)
        assert b.returncode == 0, err
    finally:
        a.kill()
        a.wait()
    listed = assert_index_valid(root)
    assert f"cu130/{new_b.name}" in listed
    # Killed before its commit point (wheels.json) the wheel is not listed; killed after it, it is.
    assert (f"cu130/{new_a.name}" in listed) == (point == "index.html")
    r = fawheels("publish", str(new_a), "--index", str(root))
    assert r.returncode == 0, r.stderr
    assert f"cu130/{new_a.name}" in assert_index_valid(root)
    assert not list(root.rglob(f".*{TMP_MARK}*")), "temp files of the killed publisher remain"


def test_two_publishers_at_once(published: tuple[Path, str], ext: Path, tmp_path: Path, verify: ModuleType) -> None:
    root, _ = published
    batches = [
        [toy_wheel(tmp_path / f"{i}-{j}", name=f"fatoy_c{i}", version=f"1.{j}", extension=ext) for j in range(3)]
        for i in range(2)
    ]
    for w in (w for batch in batches for w in batch):
        verify.write_report(w)
    procs = [
        subprocess.Popen(
            [*CLI, "publish", *map(str, batch), "--index", str(root)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in batches
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    listed = assert_index_valid(root)
    assert {f"cu130/{w.name}" for batch in batches for w in batch} <= listed


# ------------------------------------------------------------------------------------- pypiserver


@pytest.fixture
def pypiserver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real pypiserver on 127.0.0.1 (random free port): anyone may list, uploads need the password."""
    pytest.importorskip("pypiserver", reason="pip install pypiserver passlib")
    apache = pytest.importorskip("passlib.apache", reason="pip install passlib")
    htpasswd = tmp_path / "htpasswd"
    ht = apache.HtpasswdFile(str(htpasswd), new=True)
    ht.set_password("ci", PASSWORD)
    ht.save()
    packages = tmp_path / "packages"
    packages.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pypiserver",
            "run",
            "-p",
            str(port),
            "-i",
            "127.0.0.1",
            "-P",
            str(htpasswd),
            "-a",
            "update",
            "--disable-fallback",
            str(packages),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}/", packages
    finally:
        proc.kill()
        proc.wait()


# A keyring backend reading {service: {user: password}} from $FAWHEELS_TEST_KEYRING, picked through keyring's
# own PYTHON_KEYRING_BACKEND switch: the publisher finds the password the way it would in a desktop keyring.
_TEST_KEYRING = """
import json, os
from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential

class FileKeyring(KeyringBackend):
    priority = 1

    def _entries(self, service):
        with open(os.environ["FAWHEELS_TEST_KEYRING"]) as fh:
            return json.load(fh).get(service, {})

    def get_password(self, service, username):
        return self._entries(service).get(username)

    def get_credential(self, service, username):
        entries = self._entries(service)
        user = username or next(iter(entries), None)
        return SimpleCredential(user, entries[user]) if user in entries else None

    def set_password(self, service, username, password):
        raise NotImplementedError

    def delete_password(self, service, username):
        raise NotImplementedError
"""


def keyring_env(tmp_path: Path, url: str) -> dict[str, str]:
    pytest.importorskip("keyring", reason="pip install keyring")
    (tmp_path / "testkeyring.py").write_text(_TEST_KEYRING)
    (tmp_path / "keyring.json").write_text(json.dumps({url: {"ci": PASSWORD}}))
    env = clean_env(
        PYTHON_KEYRING_BACKEND="testkeyring.FileKeyring", FAWHEELS_TEST_KEYRING=str(tmp_path / "keyring.json")
    )
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    return env


@pytest.mark.server
def test_upload_to_pypiserver_then_pip_installs_from_it(
    pypiserver: tuple[str, Path], dist: dict[str, Path], ext: Path, tmp_path: Path, verify: ModuleType
) -> None:
    url, packages = pypiserver
    w = dist["cu130-1.0"]
    creds = {"FAWHEELS_INDEX_USER": "ci", "FAWHEELS_INDEX_PASSWORD": PASSWORD}
    from_keyring = keyring_env(tmp_path, url)

    r = fawheels("publish", str(w), "--index", url)
    assert r.returncode == 8 and "refused anonymous upload" in r.stderr, r.stderr
    r = fawheels(
        "publish",
        str(w),
        "--index",
        url,
        env=clean_env(FAWHEELS_INDEX_USER="ci", FAWHEELS_INDEX_PASSWORD="Wrong-Pw-0451"),
    )
    assert r.returncode == 8 and "refused the credentials" in r.stderr, r.stderr
    assert "Wrong-Pw-0451" not in r.stdout + r.stderr
    r = fawheels("publish", str(w), "--index", url + "cu128/", env=clean_env(**creds))
    assert r.returncode == 8 and "does not belong in the cu128 index" in r.stderr, r.stderr
    assert list(packages.iterdir()) == []

    r = fawheels("publish", str(w), "--index", url, env=clean_env(**creds))
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert [p.name for p in packages.iterdir()] == [w.name]
    assert sha256(packages / w.name) == sha256(w)

    r = fawheels("publish", str(dist["cu130-0.9"]), "--index", url, env=from_keyring)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert sorted(p.name for p in packages.iterdir()) == sorted([w.name, dist["cu130-0.9"].name])

    # TWINE_* works too; same bytes again is a no-op, other bytes under the same name are refused.
    twine = clean_env(TWINE_USERNAME="ci", TWINE_PASSWORD=PASSWORD)
    r = fawheels("publish", str(w), "--index", url, env=twine)
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stderr
    r = fawheels("publish", str(rebuilt(dist["cu130-1.0"], ext, tmp_path, verify)), "--index", url, env=twine)
    assert r.returncode == 8 and "another sha256" in r.stderr, r.stderr
    assert sha256(packages / w.name) == sha256(w)

    py = venv(tmp_path / "venv")
    r = pip_install(py, f"{url}simple", "fatoy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed(py) == ("1.0+cu130torch2.14", "cu130", "add_one")


# ------------------------------------------------------------------------------------- browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium not installed (apt-get install chromium)")


def headless(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.browser
def test_root_page_in_headless_chromium(published: tuple[Path, str], dist: dict[str, Path], tmp_path: Path) -> None:
    _, url = published
    r = headless("--dump-dom", f"{url}/index.html", profile=tmp_path / "profile")
    assert r.returncode == 0, r.stderr
    dom = r.stdout
    for w in dist.values():
        assert w.name in dom, f"{w.name} is not on the root page"
    assert "fatoy-cu130-torch2.14-sm120-cp311" in dom and "torch==2.14.*" in dom and "sm_120" in dom
    shot = tmp_path / "index-page.png"
    r = headless(
        f"--screenshot={shot}",
        "--window-size=1600,600",
        "--hide-scrollbars",
        f"{url}/index.html",
        profile=tmp_path / "profile",
    )
    assert r.returncode == 0, r.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # FAWHEELS_SCREENSHOT=docs/index-page.png refreshes the picture in the docs.
    if target := os.environ.get("FAWHEELS_SCREENSHOT"):
        shutil.copyfile(shot, target)
