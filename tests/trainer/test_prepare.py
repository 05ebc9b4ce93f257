"""reference_trainer.prepare: the cached, atomic offline default (SPEC §6) on a tiny config."""

import json
import math
import shutil
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from reference_trainer.config import PrepareConfig, as_dict  # noqa: E402
from reference_trainer.prepare import corpus as corpus_module  # noqa: E402
from reference_trainer.prepare import default_model as prep  # noqa: E402
from reference_trainer.prepare.corpus import FORTUNES_DIR, WORDNET_DIR, load_corpus  # noqa: E402

TINY = {
    "vocab_size": 400,
    "n_layer": 1,
    "n_embd": 32,
    "n_head": 2,
    "n_positions": 32,
    "sft_steps": 30,
    "sft_batch_size": 8,
    "sft_seq_len": 32,
    "n_prompts": 50,
    "corpus": "python",
    "threads": 1,
}


def tiny(data_dir, **overrides):
    return PrepareConfig(data_dir=str(data_dir), **{**TINY, **overrides})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    config = tiny(tmp_path_factory.mktemp("prepared"))
    return config, prep.prepare(config, progress=False)


def _snapshot(directory):
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*")}


def _dead_pid():
    code = "import os; print(os.getpid())"
    child = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(child.stdout)


def test_prepare_writes_every_artefact_and_a_complete_manifest(prepared):
    config, directory = prepared
    assert directory == config.directory()
    for name in prep.REQUIRED_FILES:
        assert (directory / name).is_file(), name
    manifest = json.loads((directory / prep.MANIFEST).read_text())
    assert manifest["config"] == as_dict(config) and manifest["key"] == config.key()
    assert manifest["corpus"]["source"] == "python"
    assert manifest["corpus"]["tokens"] > manifest["corpus"]["train_tokens"] > 0
    assert manifest["parameters"] > 0 and manifest["sft_seconds"] >= 0
    assert math.isfinite(manifest["val_perplexity"])
    assert manifest["val_perplexity"] < config.vocab_size  # learnt something beyond uniform
    assert [h["step"] for h in manifest["sft_history"]][-1] == config.sft_steps
    assert len(manifest["samples"]) == prep.N_SAMPLES
    assert set(manifest["versions"]) >= {"torch", "transformers", "tokenizers"}


def test_second_call_returns_at_once_and_rewrites_nothing(prepared):
    config, directory = prepared
    before = _snapshot(directory)
    start = time.perf_counter()
    assert prep.prepare(config, progress=False) == directory
    assert time.perf_counter() - start < 0.5
    assert _snapshot(directory) == before


def test_threads_and_data_dir_share_the_key_but_any_artefact_field_changes_it(tmp_path):
    base = tiny(tmp_path)
    assert tiny(tmp_path, threads=2).directory() == base.directory()
    assert tiny(tmp_path / "x").key() == base.key()
    for change in ({"seed": 1}, {"vocab_size": 500}, {"sft_steps": 31}, {"corpus": "debian"}):
        assert tiny(tmp_path, **change).directory() != base.directory(), change


def test_auto_without_the_debian_corpus_keys_the_fallbacks_model_not_the_debian_one(
    tmp_path, monkeypatch
):
    # A cache prepared by "auto" before the corpus was installed holds the fallback's model; once
    # the corpus is installed, "auto" must prepare the Debian one, not take that cache.
    installed = tiny(tmp_path, corpus="auto")
    monkeypatch.setattr(corpus_module, "debian_corpus_present", lambda: True)
    present = installed.key()
    monkeypatch.setattr(corpus_module, "debian_corpus_present", lambda: False)
    absent = installed.key()
    assert absent != present and absent == tiny(tmp_path, corpus="python").key()


def test_the_debian_corpus_counts_as_present_by_any_file_it_reads(tmp_path):
    fortunes_dir, wordnet_dir = tmp_path / "fortunes", tmp_path / "wordnet"
    fortunes_dir.mkdir()
    wordnet_dir.mkdir()
    (fortunes_dir / "art.dat").write_text("")  # an index only: nothing fortunes() reads
    assert not corpus_module.debian_corpus_present(fortunes_dir, wordnet_dir)
    (wordnet_dir / "data.verb").write_text("")
    assert corpus_module.debian_corpus_present(fortunes_dir, wordnet_dir)
    assert corpus_module.debian_corpus_present(fortunes_dir, tmp_path / "none") is False
    (fortunes_dir / "art").write_text("A fortune.\n%\n")
    assert corpus_module.debian_corpus_present(fortunes_dir, tmp_path / "none")


def test_tokenizer_round_trips_text_and_has_distinct_eos_and_pad(prepared):
    config, _ = prepared
    model, tokenizer, _ = prep.load_prepared(config)
    for text in ("The quick brown fox.", "  spaces,\ttabs\nand ünïcödé — “quotes” 7:30", "x"):
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.eos_token == prep.EOS_TOKEN and tokenizer.pad_token == prep.PAD_TOKEN
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    assert tokenizer.bos_token_id == tokenizer.eos_token_id
    assert tokenizer.padding_side == "left"
    assert len(tokenizer) == model.config.vocab_size <= config.vocab_size
    ids = (model.config.eos_token_id, model.config.pad_token_id, model.config.bos_token_id)
    assert ids == (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id)


def test_model_loads_in_eval_mode_tied_and_generates_from_left_padded_prompts(prepared):
    config, _ = prepared
    model, tokenizer, _ = prep.load_prepared(config)
    assert not model.training
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    batch = tokenizer(["The end of it", "A"], return_tensors="pt", padding=True)
    assert batch["attention_mask"][1, 0] == 0  # padded on the left
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=True, max_new_tokens=5, min_new_tokens=5)
    assert out.shape == (2, batch["input_ids"].shape[1] + 5)
    assert int(out.max()) < len(tokenizer)


def test_prompts_are_n_prompts_heldout_prefixes_of_prompt_words_within_half_the_context(prepared):
    config, _ = prepared
    _, tokenizer, prompts = prep.load_prepared(config)
    assert len(prompts) == config.n_prompts
    assert all(len(p.split()) == config.prompt_words for p in prompts)
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    assert max(lengths) <= config.n_positions // 2
    _, heldout = prep.split_texts(load_corpus("python")[0], config.seed)
    heldout_prefixes = {" ".join(t.split()[: config.prompt_words]) for t in heldout}
    assert set(prompts) <= heldout_prefixes


def test_same_config_gives_identical_artefacts_and_progress_goes_to_stderr(
    prepared, tmp_path, capfd
):
    _, directory = prepared
    again = prep.prepare(tiny(tmp_path), progress=True)
    assert again != directory
    for name in ("tokenizer/tokenizer.json", "model/model.safetensors", prep.PROMPTS):
        assert (again / name).read_bytes() == (directory / name).read_bytes(), name
    first, second = (json.loads((d / prep.MANIFEST).read_text()) for d in (directory, again))
    assert first["samples"] == second["samples"]
    assert first["val_perplexity"] == second["val_perplexity"]
    err = capfd.readouterr().err
    assert "sft step 1/30" in err and "validation perplexity" in err


def test_a_failed_prepare_leaves_neither_a_directory_nor_a_temporary(tmp_path, monkeypatch):
    def build_then_die(config, out, progress):
        (out / "tokenizer").mkdir()
        (out / prep.MANIFEST).write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(prep, "_build", build_then_die)
    config = tiny(tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        prep.prepare(config, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        prep.load_prepared(config)


def test_killed_temporaries_and_damaged_directories_are_never_taken_as_finished(
    prepared, tmp_path, monkeypatch
):
    _, finished = prepared
    config = tiny(tmp_path)
    final = config.directory()
    # a prepare killed just before its os.replace: complete contents, temporary name, dead pid
    killed = tmp_path / f"{prep._temporary_prefix(final)}{_dead_pid()}-abc"
    shutil.copytree(finished, killed)
    # a finished directory someone damaged by hand
    shutil.copytree(finished, final)
    (final / "model" / "model.safetensors").unlink()
    assert not prep.is_prepared(final)
    with pytest.raises(FileNotFoundError, match="prepare"):
        prep.load_prepared(config)

    rebuilt = []

    def fast_build(config, out, progress):
        rebuilt.append(out)
        shutil.copytree(finished, out, dirs_exist_ok=True)

    monkeypatch.setattr(prep, "_build", fast_build)
    assert prep.prepare(config, progress=False) == final
    assert len(rebuilt) == 1 and prep.is_prepared(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]  # killed one cleaned up


def test_a_directory_of_an_older_format_is_not_taken_as_finished(prepared, tmp_path):
    _, finished = prepared
    old = shutil.copytree(finished, tmp_path / "old")
    manifest = json.loads((old / prep.MANIFEST).read_text())
    (old / prep.MANIFEST).write_text(json.dumps({**manifest, "format": prep.FORMAT_VERSION - 1}))
    assert prep.is_prepared(finished) and not prep.is_prepared(old)


def test_load_prepared_without_a_prepare_raises_file_not_found_naming_prepare(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the prepare step"):
        prep.load_prepared(tiny(tmp_path))


@pytest.mark.skipif(
    not (FORTUNES_DIR.is_dir() and WORDNET_DIR.is_dir()),
    reason="Debian corpus not installed (apt-get install fortunes wordnet-base)",
)
def test_debian_texts_prepare_and_learn_below_uniform_perplexity(tmp_path, monkeypatch):
    texts, source = load_corpus("debian")
    assert source == "debian" and len(texts) > 10_000
    # every 20th text: the same fortunes and WordNet sentences, a twentieth of the tokenizing
    monkeypatch.setattr(prep, "load_corpus", lambda _: (texts[::20], source))
    config = tiny(tmp_path, corpus="debian", sft_steps=20)
    manifest = json.loads((prep.prepare(config, progress=False) / prep.MANIFEST).read_text())
    assert manifest["corpus"]["source"] == "debian"
    assert manifest["corpus"]["texts"] == len(texts[::20])
    assert manifest["val_perplexity"] < config.vocab_size
    assert [s["prompt"] for s in manifest["samples"]] == prep.load_prepared(config)[2][:3]
