"""`report --params`: counts from the real modules equal each method's closed form and an
independent count at every size; the CLI finds every registered method and its gin settings."""

import math

import pytest

from hyperprompt import cli
from hyperprompt.analysis import params
from hyperprompt.methods.base import registered
from hyperprompt.models.configs import CONFIGS
from hyperprompt.models.t5 import Transformer

L, B, T_IN, T = 16, 16, 32, 28  # the gin files' l, b, t', t


def independent_count(variant, tasks, d, joined_kv, layers):
    """HyperPrompt parameters with encoder and decoder prompts, counted tensor by tensor."""
    tensors = [(tasks, L, d)]  # global prompts P_m
    for _stack in ("encoder", "decoder"):
        for _kv in ("key", "value"):
            for _layer in range(layers):
                copies = {"share": 1, "sep": tasks, "global": 0}[variant]
                tensors += [(copies, d, B), (copies, B, joined_kv)]  # D and U
    if variant == "global":
        tensors.append((tasks, T_IN))  # task embeddings k_m
        for _stack in ("encoder", "decoder"):
            tensors += [(layers, T_IN), (2 * T_IN, T), (T, T),  # z_j and h_t
                        (2, T, d * B), (2, T, B * joined_kv)]  # H_k, H_v emitting D and U
    total = 0
    for shape in tensors:
        size = 1
        for n in shape:
            size *= n
        total += size
    return total


@pytest.fixture(scope="module")
def report():
    return params.parameter_report(num_tasks=8)


@pytest.mark.parametrize("size", sorted(CONFIGS))
def test_counts_equal_the_closed_forms(report, size):
    cfg = CONFIGS[size]
    d, joined_kv, layers = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.num_encoder_layers
    built = params.methods(cfg, 8)
    assert set(built) == set(registered()) - {"vanilla"}
    for name, method in built.items():
        assert report[size][name]["method"] == method.parameter_count(cfg), name
    for variant in ("share", "sep", "global"):
        got = report[size][f"hyperprompt_{variant}"]
        assert got["method"] == independent_count(variant, 8, d, joined_kv, layers)
        assert got["trainable"] == report[size]["backbone"] + got["method"]  # all tuned
    prompt_tuning = report[size]["prompt_tuning"]
    assert prompt_tuning == {"method": 8 * 100 * d, "trainable": 8 * 100 * d}  # backbone frozen


@pytest.mark.parametrize("method", sorted(registered()))
def test_a_methods_network_is_the_backbone_plus_its_conditioner(method):
    """What `trainable_count` builds on: the whole network's parameters (one trace) are the
    bare backbone's, unchanged, and the conditioner's from tracing `condition` alone (none
    for vanilla, whose trainable count is the backbone's)."""
    cfg = CONFIGS["t5_1_1_small"]
    module = registered()[method].build(cfg, 8)
    whole = params._shapes(Transformer(cfg, module))
    assert whole == {**params._shapes(Transformer(cfg)),
                     **params._conditioner_shapes(cfg, module)}
    if method == "vanilla":
        assert params.trainable_count(cfg, module) == params.backbone_count(cfg) == \
            sum(math.prod(s) for s in whole.values())


def test_backbone_and_the_papers_share_at_xxl(report):
    xxl = report["t5_1_1_xxl"]
    assert xxl["backbone"] == 11_135_332_352
    assert round(100 * xxl["hyperprompt_global"]["method"] / xxl["backbone"], 3) == 0.137


def test_cli_reads_tasks_and_settings_from_gin(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(params, "parameter_report", lambda *a: calls.append(a) or {})
    monkeypatch.setattr(params, "print_table", lambda *a: None)
    assert cli.main(["report", "--params"]) == 0
    assert calls[-1][0] == 8 and not any(calls[-1][1].values())  # the modules' defaults
    assert cli.main(["report", "--params", "--gin_file=experiments/quickstart.gin",
                     "--gin_file=methods/hyperprompt_sep.gin", "--gin.HYPERPROMPT_LENGTH=8"]) == 0
    num_tasks, settings = calls[-1]
    assert num_tasks == 4
    for variant in ("share", "sep", "global"):  # the gin-bound fields, not the variant
        assert settings[f"hyperprompt_{variant}"] == {
            "placement": "both", "prompt_length": 8, "bottleneck": 16, "task_embed_dim": 32,
            "layer_task_dim": 28}
    assert settings["prompt_tuning"] == {}  # its gin file is not included


@pytest.mark.parametrize("columns", [60, 80, 200])  # 80: rich's width when not a terminal
def test_printed_table_has_every_size_and_method(report, capsys, monkeypatch, columns):
    """Every size name whole at any console width, beside a method with a long name."""
    monkeypatch.setenv("COLUMNS", str(columns))
    labels = {"hyperprompt_global": "HP-Global", "hyperprompt_sep": "a method label of 30 chars"}
    params.print_table(report, params.describe(8), labels)
    out = capsys.readouterr().out
    assert "HyperPrompt-Global: variant=global placement=both prompt_length=16" in out
    assert all(size in out for size in CONFIGS)
    xxl = out.index("t5_1_1_xxl")  # the last table: its HyperPrompt-Global row
    row = out[out.index("HP-Global", xxl):].splitlines()
    assert "15.21M" in row[0] and "0.137%" in row[1] and "100%" in row[2]
