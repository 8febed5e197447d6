"""The one local-LLM runner (mmbench.causal_lm) against a plain forward pass of the packaged model."""

import pytest
import torch

from mmbench.causal_lm import CausalLM, load_pretrained

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def model() -> CausalLM:
    return CausalLM("", "cpu", "the test")


def test_continuation_logits_equal_a_forward_pass_over_prompt_and_continuation(model):
    prompt = model.encode("Songs I played tonight: Björk - Jóga; Sigur Rós - Hoppípolla. Next:")
    continuations = [model.encode(t) for t in (" Radiohead - Airbag", " Air", " Múm - Green Grass of Tunnel")]
    seen = 0
    for start, logits in model.continuation_logits(prompt, continuations, batch_size=2):
        assert logits.dtype == torch.float32
        for b in range(len(logits)):
            tokens = continuations[start + b]
            with torch.no_grad():
                plain = model.model(torch.tensor([prompt + tokens])).logits[0].float()
            # Position j is the distribution after the prompt and the first j tokens.
            expected = plain[len(prompt) - 1 : len(prompt) + len(tokens)]
            torch.testing.assert_close(logits[b, : len(tokens) + 1], expected, atol=1e-4, rtol=1e-4)
            seen += 1
    assert seen == 3


def test_loading_the_gguf_model_draws_no_bar_and_a_bad_name_is_one_line(capfd):
    load_pretrained("", "the test")
    assert "GGUF" not in capfd.readouterr().err
    from mmbench.errors import MmbenchError

    with pytest.raises(MmbenchError, match="^the test: cannot load /no/such/model"):
        load_pretrained("/no/such/model", "the test")
