"""Search space: vocabularies, parsing, JSON, descriptions and errors."""

import json

import pytest

from autogan_tf import search_space as ss


def test_layout_and_size():
    assert ss.ARCH_LENGTH == 14
    assert [len(t) for t in ss.CELL_TOKENS] == [4, 5, 5]
    assert ss.num_architectures() == 36 * 72 * 144 == 373_248
    assert ss.stage_slice(1) == slice(4, 9)
    assert [t.name for t in ss.stage_tokens(2)] == ["conv", "norm", "up", "shortcut", "skip"]
    assert ss.stage_tokens(2)[-1].size == 4 and ss.stage_tokens(1)[-1].size == 2


def test_parse_name_string_list_and_json(tmp_path):
    a = ss.Architecture.parse("autogan_cifar10_a")
    assert a.tokens == (1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3)
    assert ss.Architecture.parse("1 0 1 1 1 0 0 1 1 1 0 1 0 3") == a
    assert ss.Architecture.parse("[1,0,1,1,1,0,0,1,1,1,0,1,0,3]") == a
    assert ss.Architecture.parse(list(a.tokens)) == a
    path = tmp_path / "a.json"
    a.write_json(str(path), reward=8.5)
    data = json.loads(path.read_text())
    assert data["arch"] == list(a.tokens) and data["reward"] == 8.5
    assert ss.Architecture.parse(str(path)) == a
    # a search's top-K file: the first entry is taken
    topk = tmp_path / "topk.json"
    topk.write_text(json.dumps({"architectures": [{"arch": list(ss.REFERENCE_ARCHS[
        "autogan_cifar10_b"]), "reward": 3.0}, {"arch": list(a.tokens)}]}))
    assert ss.Architecture.parse(str(topk)).tokens == ss.REFERENCE_ARCHS["autogan_cifar10_b"]


def test_describe_and_skip_sources():
    a = ss.Architecture.parse("autogan_cifar10_a")
    assert a.describe().splitlines() == [
        "cell0: pre-activation conv, norm=none, up=nearest, shortcut=on",
        "cell1: pre-activation conv, norm=none, up=bilinear, shortcut=on, skip from cell0",
        "cell2: pre-activation conv, norm=none, up=nearest, shortcut=off, skip from cell0, cell1",
    ]
    # least significant bit = nearest earlier cell
    assert ss.CellChoice(0, 0, 0, 0, 1).skip_sources(2) == (1,)
    assert ss.CellChoice(0, 0, 0, 0, 2).skip_sources(2) == (0,)
    assert ss.CellChoice(0, 0, 0, 0, 3).skip_sources(2) == (0, 1)
    assert ss.CellChoice(0, 0, 0, 0, 1).skip_sources(1) == (0,)


def test_partial_architectures():
    p = ss.Architecture.parse("1 0 1 1", allow_partial=True)
    assert p.num_cells == 1 and p.padded() == (1, 0, 1, 1) + (0,) * 10
    with pytest.raises(ss.ArchitectureError, match="expected 14"):
        ss.Architecture.parse("1 0 1 1")


@pytest.mark.parametrize("spec, message", [
    ("1 0 1 1 1 0 0 1 1 1 0 1 0 4", r"token 13 \(cell2 skip\) is 4; it may take 0..3"),
    ("2 0 1 1 1 0 0 1 1 1 0 1 0 3", r"token 0 \(cell0 conv\) is 2; it may take 0..1 "
                                    r"\(0=post-activation, 1=pre-activation\)"),
    ("1 0 1 1 1 3 0 1 1 1 0 1 0 3", r"token 5 \(cell1 norm\) is 3"),
    ("1 0 1 1 1 0 0 1 2 1 0 1 0 3", r"token 8 \(cell1 skip\) is 2; it may take 0..1"),
    ("1 0 1 1 1 0 0 1 1 1 0 1 0", r"13 tokens; a full one has 14"),
    ("1 0 1 -1 1 0 0 1 1 1 0 1 0 3", r"token 3 \(cell0 shortcut\) is -1"),
    ("autogan_cifar10_z", r"cannot parse architecture 'autogan_cifar10_z'"),
    ("", r"cannot parse"),
    ('{"arch": [1, 0', r"malformed architecture JSON"),
    ('{"tokens": [1]}', r"no 'arch' key"),
    ("missing_file.json", r"architecture file not found: missing_file.json"),
])
def test_bad_architectures_raise_one_clear_error(spec, message):
    with pytest.raises(ss.ArchitectureError, match=message):
        ss.Architecture.parse(spec)


def test_validate_cell():
    ss.validate_cell(2, (1, 0, 1, 0, 3))
    with pytest.raises(ss.ArchitectureError, match="cell1 takes 5 tokens"):
        ss.validate_cell(1, (1, 0, 1, 0))


def test_sngan_decodes_to_sngan_blocks():
    # SN-GAN's ResNet generator: every cell is a pre-activation residual block with batch norm,
    # nearest up-sampling and a 1x1-conv shortcut; nothing skips between cells.
    a = ss.Architecture.parse("sngan")
    assert a.cells == (ss.CellChoice(1, 1, 1, 1, 0),) * 3
    assert a.describe().splitlines() == [
        "cell0: pre-activation conv, norm=batch norm, up=nearest, shortcut=on",
        "cell1: pre-activation conv, norm=batch norm, up=nearest, shortcut=on, skip from none",
        "cell2: pre-activation conv, norm=batch norm, up=nearest, shortcut=on, skip from none",
    ]
    with pytest.raises(ss.ArchitectureError, match=r"expected one of \[.*'sngan'\]"):
        ss.Architecture.parse("sn_gan")


def test_sngan_is_accepted_where_architectures_are_named():
    from autogan_tf.search import derive_lib
    from autogan_tf.training import train_lib

    tokens = ss.REFERENCE_ARCHS["sngan"]
    assert train_lib.TrainConfig(arch="sngan").arch == tokens
    archs = derive_lib.load_candidates("sngan;autogan_cifar10_a")
    assert [a.tokens for a in archs] == [tokens, ss.REFERENCE_ARCHS["autogan_cifar10_a"]]
