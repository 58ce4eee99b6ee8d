"""The files generated from the models are committed up to date, and the matrix schema fits the loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from fawheels._util import generate
from fawheels.matrix import schema
from fawheels.matrix.model import MatrixFile, yaml_keys

ROOT = Path(__file__).parents[2]
SCHEMA = json.loads((ROOT / "build_matrix.schema.json").read_text())


def test_committed_generated_files_equal_what_the_models_make() -> None:
    assert generate.stale(ROOT) == [], "run `python -m fawheels._util.generate` and commit the result"


def test_check_names_the_stale_file_and_generate_repairs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for rel in generate.GENERATED:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0
    doc = tmp_path / "docs/matrix.md"
    doc.write_text(doc.read_text().replace("| `serves` |", "| `served` |"))
    (tmp_path / "build_matrix.schema.json").unlink()
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/matrix.md is stale" in err and "build_matrix.schema.json is stale" in err
    assert "build-info.md" not in err
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0
    assert doc.read_text() == (ROOT / "docs/matrix.md").read_text()


def test_build_info_doc_lists_every_field_the_writer_emits() -> None:
    doc = (ROOT / "docs/build-info.md").read_text()
    for path in (
        "serves",
        "fawheels",
        "flags.defines",
        "flags.prefix_maps",
        "toolchain.host_compiler",
        "source.commit",
        "patches[].sha256",
    ):
        assert f"| `{path}` |" in doc


def test_the_shipped_matrix_names_and_fits_its_schema() -> None:
    text = (ROOT / "build_matrix.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./build_matrix.schema.json"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(yaml.safe_load(text), SCHEMA, cls=jsonschema.Draft202012Validator)


def test_schema_keys_are_the_loader_keys() -> None:
    assert list(SCHEMA["properties"]) == list(yaml_keys(MatrixFile))
    for name, cls, _where in schema.SECTIONS:
        assert list(SCHEMA["$defs"][name]["properties"]) == list(yaml_keys(cls)), name


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda m: m["sources"]["flash-attn-2.8.3"].update(sha265="0" * 64), "sha265"),
        (lambda m: m["sources"]["flash-attn-2.8.3"].pop("sha256"), "sha256"),
        (lambda m: m["toolchains"]["cu130"].update(provision="conda"), "conda"),
        (lambda m: m["toolchains"]["cu130-pip"].pop("pip_version"), "pip_version"),
        (lambda m: m["torch"]["2.14"].update(cxx_std=23), "23"),
        (lambda m: m["profiles"]["qwen3"].update(head_dims=[72]), "72"),
        (lambda m: m["targets"][0]["matrix"].update(python=[3.1]), "3.1"),
        (lambda m: m["targets"][0].update(exclude=[{"pyhton": "3.11"}]), "pyhton"),
    ],
)
def test_schema_refuses_what_the_loader_refuses(change: object, where: str) -> None:
    from fawheels._util.errors import ConfigError
    from fawheels.matrix.config import load_matrix

    text = (ROOT / "build_matrix.yaml").read_text()
    data = yaml.safe_load(text)
    assert callable(change)
    change(data)
    with pytest.raises(jsonschema.ValidationError) as exc:
        jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert where in str(exc.value)
    with pytest.raises(ConfigError):
        load_matrix(yaml.safe_dump(data))
