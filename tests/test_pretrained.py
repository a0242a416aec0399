"""README's "Python API" block, run as written against a random HF T5 and transformers."""

import os
import re

import numpy as np
import torch

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
HUB_ID = '"google-t5/t5-small"'
VOCAB = '"gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"'
# t5-small's kind (v1.0: ReLU, tied logits) at a random tiny size with T5's vocabulary.
TINY_T5 = dict(vocab_size=32128, d_model=16, num_heads=2, d_kv=8, d_ff=32, num_layers=2,
               feed_forward_proj="relu", tie_word_embeddings=True)


def readme_example() -> str:
    with open(README) as f:
        section = f.read().split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_matches_transformers(tmp_path, save_hf_t5, t5_vocab, capsys):
    code = readme_example()
    assert HUB_ID in code and VOCAB in code
    hf = save_hf_t5(tmp_path, **TINY_T5)
    run = {}
    exec(code.replace(HUB_ID, repr(str(tmp_path)))  # the README's own code
         .replace(VOCAB, repr(t5_vocab.sentencepiece_model_file)), run)
    inputs, targets = run["inputs"], run["targets"]
    with torch.no_grad():  # transformers shifts the labels into decoder inputs itself
        want = hf(input_ids=torch.tensor(inputs, dtype=torch.long),
                  attention_mask=torch.tensor(inputs > 0),
                  labels=torch.tensor(targets, dtype=torch.long)).logits
        log_probs = torch.log_softmax(want, -1).numpy()
        generated = hf.generate(input_ids=torch.tensor(inputs, dtype=torch.long),
                                attention_mask=torch.tensor(inputs > 0), do_sample=False,
                                num_beams=1, max_new_tokens=16, min_new_tokens=0).numpy()
    real = targets > 0  # our decoder masks padded target positions; HF's does not
    np.testing.assert_allclose(np.asarray(run["logits"])[real], want.numpy()[real], atol=1e-5)
    picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(run["scores"], (picked * real).sum(-1), rtol=1e-5)
    expected = np.zeros((1, 16), np.int64)
    expected[:, : generated.shape[1] - 1] = generated[:, 1:]  # without the start token
    np.testing.assert_array_equal(run["tokens"], expected)
    assert capsys.readouterr().out.strip() == t5_vocab.decode(expected[0].tolist()).strip()
