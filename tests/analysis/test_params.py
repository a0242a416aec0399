"""`report --params`: counts from the real modules equal the closed forms at every size."""

import pytest

from hyperprompt import cli
from hyperprompt.analysis import params
from hyperprompt.methods.hyperprompt import parameter_count
from hyperprompt.models.configs import CONFIGS

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
def test_counts_equal_the_closed_form(report, size):
    cfg = CONFIGS[size]
    d, joined_kv, layers = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.num_encoder_layers
    for variant in ("share", "sep", "global"):
        got = report[size][f"hyperprompt_{variant}"]
        assert got == parameter_count(variant, 8, d, joined_kv, layers, L, B, T_IN, T, 2)
        assert got == independent_count(variant, 8, d, joined_kv, layers)
    assert report[size]["prompt_tuning"] == 8 * 100 * d


def test_backbone_and_the_papers_share_at_xxl(report):
    xxl = report["t5_1_1_xxl"]
    assert xxl["backbone"] == 11_135_332_352
    assert round(100 * xxl["hyperprompt_global"] / xxl["backbone"], 3) == 0.137


def test_cli_reads_tasks_and_sizes_from_gin(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(params, "parameter_report", lambda *a: calls.append(a) or {})
    assert cli.main(["report", "--params"]) == 0
    assert calls[-1] == (8, {}, {})  # no gin file: the modules' defaults, 8 tasks
    assert cli.main(["report", "--params", "--gin_file=experiments/quickstart.gin",
                     "--gin_file=methods/hyperprompt_sep.gin", "--gin.HYPERPROMPT_LENGTH=8"]) == 0
    assert calls[-1] == (4, {"placement": "both", "prompt_length": 8, "bottleneck": 16,
                             "task_embed_dim": 32, "layer_task_dim": 28}, {})
    assert "4 tasks: HyperPrompt l=8 b=16 t'=32 t=28 (both), Prompt Tuning 100 tokens" in \
        " ".join(capsys.readouterr().out.split())


def test_printed_table_has_every_size(report, capsys):
    params.print_table(report, "parameters")
    out = capsys.readouterr().out
    assert all(size in out for size in ("t5_small", "t5_1_1_xxl"))
    xxl = out[out.index("t5_1_1_xxl"):].splitlines()
    assert "15.21M" in xxl[0] and "0.137%" in xxl[1]  # HyperPrompt-Global at T5 1.1 XXL
