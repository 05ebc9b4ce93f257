"""The training forward reproduces generate's log-probs (SPEC §6 traps)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny  # noqa: E402

from reference_trainer.rollout import position_ids_from, sample, sequence_forward  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = build_tiny(tmp_path_factory.mktemp("tiny"))
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(directory / "model").eval()
    return model, tokenizer


PROMPTS = ["The", "A list of the values", "Note that at least", "x"]  # different lengths: padding


def generate_logprobs(model, tokenizer, min_new_tokens):
    """Sample with generate and return its own log-probs of the sampled tokens."""
    torch.manual_seed(3)
    encoded = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    out = model.generate(
        **encoded,
        do_sample=True,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        max_new_tokens=10,
        min_new_tokens=min_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        output_scores=True,
        return_dict_in_generate=True,
    )
    scores = torch.stack(out.scores, dim=1)  # processed logits, EOS blocked where it was
    tokens = out.sequences[:, encoded["input_ids"].shape[1] :]
    return torch.log_softmax(scores, -1).gather(-1, tokens[..., None])[..., 0]


@pytest.mark.parametrize("min_new_tokens", [0, 4])
def test_training_forward_reproduces_generate_logprobs(tiny, min_new_tokens):
    model, tokenizer = tiny
    expected = generate_logprobs(model, tokenizer, min_new_tokens)
    torch.manual_seed(3)
    rollout = sample(model, tokenizer, PROMPTS, 10, min_new_tokens, 1.0)
    with torch.no_grad():
        got = sequence_forward(model, rollout, 1.0, min_new_tokens, tokenizer.eos_token_id).logp
    mask = rollout.response_mask
    assert got.shape == expected.shape
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-4, rtol=1e-4)


def test_forward_without_position_ids_would_not_match(tiny):
    """The trap itself: left padding shifts positions unless they come from the mask."""
    model, tokenizer = tiny
    torch.manual_seed(3)
    rollout = sample(model, tokenizer, PROMPTS, 10, 0, 1.0)
    with torch.no_grad():
        right = model(
            input_ids=rollout.input_ids,
            attention_mask=rollout.attention_mask,
            position_ids=position_ids_from(rollout.attention_mask),
        ).logits
        wrong = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask).logits
    padded_rows = (rollout.attention_mask[:, : rollout.prompt_length] == 0).any(-1)
    assert padded_rows.any()
    assert not torch.allclose(right[padded_rows], wrong[padded_rows], atol=1e-4)


def test_response_mask_stops_after_first_eos(tiny):
    model, tokenizer = tiny
    torch.manual_seed(0)
    rollout = sample(model, tokenizer, PROMPTS * 8, 12, 0, 1.0)
    eos = rollout.response_ids == tokenizer.eos_token_id
    for row in range(len(rollout.prompts)):
        positions = eos[row].nonzero()
        if len(positions):
            first = int(positions[0])
            assert rollout.response_mask[row, : first + 1].all()
            assert not rollout.response_mask[row, first + 1 :].any()
        else:
            assert rollout.response_mask[row].all()
