"""Notebooks as tests: hygiene of every notebook, and a papermill smoke run asserting on each results.json.

nbval (`--nbval-lax`, run by `make test` over notebooks/) checks the cells marked `# NBVAL_CHECK_OUTPUT`.
Add a chapter's assertions to CHECKS when you add the chapter.
"""
from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from aigc_lib.course import NOTEBOOKS, course_notebooks, execute_notebook, write_index

ALL_NOTEBOOKS = course_notebooks() + sorted(NOTEBOOKS.glob("NN_*.ipynb"))  # chapters + the template
COLAB = re.compile(r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/notebooks/([\w.-]+)\.ipynb")
TIME_ESTIMATE = re.compile(r"\*\*Time:\*\*.*smoke.*quick.*full", re.DOTALL)
SECRETS = re.compile(r"(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9]{20,}|/home/\w+|/Users/\w+|/root/|[A-Z]:\\\\Users)")


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


# ------------------------------------------------------------------------------------ hygiene
@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = nb.cells
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell must be tagged 'parameters'"
    for line in _source(params[0]).splitlines():  # plain assignments only: papermill appends its overrides
        assert not line.strip() or line.lstrip().startswith("#") or re.match(r"^[A-Z_][A-Z0-9_]*\s*=", line), line
    assert "PROFILE" in _source(params[0]) and "RUN_DIR" in _source(params[0])
    badges = [m.group(1) for c in cells[:2] for m in COLAB.finditer(_source(c))]
    assert badges == [path.stem], f"first cell needs one Colab badge pointing at {path.name}, found {badges}"
    intro = _source(cells[0])
    assert "What you will learn" in intro and TIME_ESTIMATE.search(intro), "intro needs learn + time per profile"
    # cells[1] is the generated Colab setup cell: tests/test_colab_setup.py checks it is identical everywhere
    text = "\n".join(_source(c) for c in cells)
    assert "## Exercises" in text and "Solutions" in text and "## Summary" in text
    assert re.search(r"^## (\d+\. )?Further reading", text, re.M), "a '## Further reading' section with citations"
    raw_cells = json.loads(path.read_text(encoding="utf-8"))["cells"]  # nbformat.read fills in missing ids
    ids = [c.get("id") for c in raw_cells]
    assert None not in ids and len(set(ids)) == len(ids), "every cell needs its own id (nbformat 4.5)"
    assert not SECRETS.search(text), f"absolute path or token: {SECRETS.search(text).group(0)}"
    for cell in cells:
        if cell.cell_type == "code" and cell.get("outputs"):
            assert "NBVAL_CHECK_OUTPUT" in _source(cell), "stored outputs only in NBVAL_CHECK_OUTPUT cells"
    for cell in cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in _source(cell):
            assert cell.get("outputs"), "a NBVAL_CHECK_OUTPUT cell must store the output nbval compares"
    assert f'start_run("{path.stem}"' in text, "start_run must be given the notebook's own name"


def test_every_chapter_is_in_the_readme():
    readme = (NOTEBOOKS.parent / "README.md").read_text()
    for path in course_notebooks():
        assert path.name in readme, f"{path.name} missing from the README's chapter table"


# ------------------------------------------------------------------------------------ Chinese readers
CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _numbers(text: str) -> set[str]:
    """The numbers a text states, with thousands separators dropped (1,500 and 1500 are the same number)."""
    return set(NUMBER.findall(re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)))


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_chinese_guide_and_summary(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    markdown = [(i, _source(c)) for i, c in enumerate(cells) if c.cell_type == "markdown"]
    guides = [i for i, text in markdown if text.startswith("## 中文导读")]
    summaries = [i for i, text in markdown if text.startswith("## 中文小结")]
    english = [i for i, text in markdown if re.search(r"^## Summary", text, re.MULTILINE)]
    assert len(guides) == 1 and len(summaries) == 1, "one '## 中文导读' and one '## 中文小结' markdown cell"
    params = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert 1 < guides[0] < params, "中文导读 goes after the Colab setup cell and before the parameters cell"
    assert len(english) == 1 and summaries[0] == english[0] + 1, "中文小结 goes right after the '## Summary' cell"
    guide, summary = _source(cells[guides[0]]), _source(cells[summaries[0]])
    for text in (guide, summary):
        assert len(CJK.findall(text)) >= 40, text[:80]
        assert "稳定扩散" not in text, "Stable Diffusion keeps its English name"
    bullets = [line for line in guide.splitlines() if line.startswith("- ")]
    assert 4 <= len(bullets) <= 8, f"中文导读: 4-8 points on what the reader learns, found {len(bullets)}"
    # the Chinese states no number its English source does not: the time line copies the intro's **Time:** line,
    # the 中文小结 the English Summary (so an edit of one without the other shows here)
    time_zh = [line for line in guide.splitlines() if line.startswith("**用时：**")]
    intro = _source(cells[0])
    assert len(time_zh) == 1, "中文导读 needs one '**用时：**' line"
    assert _numbers(time_zh[0]) <= _numbers(intro[intro.index("**Time:**"):]), (
        _numbers(time_zh[0]) - _numbers(intro[intro.index("**Time:**"):]))
    english_summary = _source(cells[english[0]])
    english_summary = english_summary[english_summary.index("## Summary"):]
    assert _numbers(summary) <= _numbers(english_summary), _numbers(summary) - _numbers(english_summary)


PLACEHOLDER = re.compile(r"to be measured|not measured|\bTODO\b|\bTBD\b|placeholder", re.IGNORECASE)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_no_placeholder_text(path: Path):
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type in ("markdown", "code"):
            found = PLACEHOLDER.search(_source(cell))
            assert not found, f"cell {index}: {found.group(0)!r}"


# A control character in a cell is almost always a LaTeX command eaten by a string escape ("\theta" written
# where "\\theta" was meant becomes a tab and "heta"): the formula renders broken.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_no_control_characters(path: Path):
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        source = _source(cell)
        found = CONTROL.search(source)
        context = source[max(0, found.start() - 40):found.end() + 20] if found else ""
        assert not found, f"cell {index}: a control character in {context!r}"
        if cell.cell_type == "markdown":
            assert "\t" not in source, f"cell {index}: a tab in markdown (an escaped \\t?)"


GLOSSARY = NOTEBOOKS.parent / "docs" / "glossary.md"


def test_glossary_has_150_terms_linked_to_existing_chapters():
    text = GLOSSARY.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines()
            if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line) and not line.startswith("| English")]
    assert len(rows) >= 150, f"{len(rows)} terms"
    terms = [row.split("|")[1].strip().lower() for row in rows]
    assert len(set(terms)) == len(terms), [t for t in terms if terms.count(t) > 1]
    for row in rows:
        assert CJK.search(row.split("|")[2]), row
        assert "](../notebooks/" in row, f"no chapter link: {row}"
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        target = (GLOSSARY.parent / link.split("#")[0]).resolve()
        assert target.parent == NOTEBOOKS.resolve() and target.suffix == ".ipynb", link
        assert target.is_file(), f"{link}: no such notebook"
        assert target.stem[:2].isdigit(), f"{link}: link chapters, not the template"
    repo = NOTEBOOKS.parent
    for page, link in (("README.md", "docs/glossary.md"), ("README.zh-CN.md", "docs/glossary.md"),
                       ("docs/index.md", "glossary.md")):
        assert f"]({link})" in (repo / page).read_text(encoding="utf-8"), f"{page} should link the glossary"


def test_chinese_readme_terms_and_punctuation():
    text = (NOTEBOOKS.parent / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "稳定扩散" not in text, "Stable Diffusion keeps its English name"
    assert "人工智能生成内容（AIGC）" in text and "生成式人工智能（AIGC）" not in text  # AIGC: AI-generated content
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    quoted = [line for line in prose.splitlines() if '"' in line and CJK.search(line)]
    assert not quoted, f"Chinese text quotes with “”, not ASCII quotes: {quoted[:3]}"


# ------------------------------------------------------------------------------------ papermill
def _check_00(r: dict) -> None:
    # measured on a 2-core CPU, smoke (150 steps): loss 1.0 -> ~0.3; demand at least a 40% drop
    assert r["loss_last"] < 0.6 * r["loss_first"], (r["loss_first"], r["loss_last"])
    # digits drawn as asked (a logistic-regression judge; chance 0.10): untrained 0.08 -> trained 0.38 (smoke, busy
    # 2-core CPU; LEARN=False: 0.095). Demand twice chance and 15 points over the untrained denoiser.
    acc, untrained = r["digit_accuracy_trained"], r["digit_accuracy_untrained"]
    assert acc > 0.2 and acc > untrained + 0.15, (untrained, acc)
    # offline (CI) the hub path cannot run: the tiny GPT-2 must come from the cache or the local folder
    assert r["model_source"] in ({"hub", "cache", "local"} if r["online"] else {"cache", "local"})


def _check_01(r: dict) -> None:
    # measured on a 2-core CPU, smoke (seed 0): every value below was identical with 1 and 2 threads.
    # The two derivations are exact up to the search grids: D* 2.5e-4 (candidate spacing), C(G) 2.8e-5.
    assert r["d_star_max_error"] < 1e-3, r["d_star_max_error"]
    assert r["jsd_max_error"] < 1e-3, r["jsd_max_error"]
    # a small MLP trained 300 steps on samples: 0.082 from D* where there is data
    assert r["d_star_trained_max_error"] < 0.2, r["d_star_trained_max_error"]
    # (1 - D) / D at D(G(z)) = 0.01 is exactly 99
    assert abs(r["grad_ratio_at_0.01"] - 99) < 0.5, r["grad_ratio_at_0.01"]
    # 1-D GAN, 600 steps: W1 to the data 1.99 -> 0.32; mean +0.12 (target +0.01), std 2.04 (target 2.07),
    # D on the data 0.51
    assert r["gan1d_w1_after"] < 0.5 * r["gan1d_w1_before"], (r["gan1d_w1_before"], r["gan1d_w1_after"])
    assert abs(r["gan1d_final_mean"] - r["gan1d_target_mean"]) < 0.6, r["gan1d_final_mean"]
    assert 0.7 < r["gan1d_final_std"] / r["gan1d_target_std"] < 1.3, r["gan1d_final_std"]
    assert abs(r["gan1d_d_on_data"] - 0.5) < 0.15, r["gan1d_d_on_data"]
    # critic without a Lipschitz constraint: gap 707 after 200 steps; with the penalty 1.78, true W1 in [1.62, 1.70]
    lower, upper = r["critic_w1_bounds"]
    assert r["critic_gap_unconstrained"] > 20 * r["critic_gap_gp"], r["critic_gap_unconstrained"]
    assert 0.5 * lower < r["critic_gap_gp"] < 1.5 * upper, (r["critic_gap_gp"], lower, upper)
    # ring, 400 generator updates: too short to cover modes (0/8 for both; quick: vanilla 2, WGAN-GP 8; full:
    # vanilla 4, WGAN-GP 8), but both generators have spread from the centre (radius ~0.15) to the ring (radius 2):
    # measured 1.91 (vanilla) and 1.69 (WGAN-GP)
    assert r["steps_ring"] == 400
    for name in ("vanilla", "wgan_gp"):
        assert 0 <= r[f"ring_modes_{name}"] <= 8 and 0 <= r[f"ring_high_quality_{name}"] <= 1
        assert 1.2 < r[f"ring_radius_{name}"] < 2.8, (name, r[f"ring_radius_{name}"])


def _check_02(r: dict) -> None:
    # measured on a 2-core CPU, smoke, offline font digits (2 runs: 1 and 2 torch threads; seeded):
    # fd_untrained 65.5, fd_trained 8.72-8.76, fd_ema 9.02-9.64, fd_real_vs_real 0.63, coverage trained 9-10,
    # EMA 8-9, untrained 1, judge accuracy 0.90, d_loss_last 1.15-1.20, g_loss_last 1.05-1.14
    assert r["source"] in ({"mnist", "font-digits"} if r["online"] else {"font-digits"}), r["source"]
    keys = ("fd_untrained", "fd_trained", "fd_ema", "fd_real_vs_real", "d_loss_last", "g_loss_last")
    assert all(math.isfinite(r[k]) for k in keys), {k: r[k] for k in keys}
    # real-vs-real is the floor; the untrained G (noise) is ~100x above it: demand 20x
    assert 0 < r["fd_real_vs_real"] < r["fd_trained"] and r["fd_untrained"] > 20 * r["fd_real_vs_real"]
    # training cut FD ~7x (trained and EMA both ~0.14 of untrained): demand at least a 2.5x drop
    assert r["fd_trained"] < 0.4 * r["fd_untrained"], (r["fd_trained"], r["fd_untrained"])
    assert r["fd_ema"] < 0.4 * r["fd_untrained"], (r["fd_ema"], r["fd_untrained"])
    # coverage 8-10 of 10 after training, 1 before: demand 6 (no mode collapse), untrained at most 3
    assert r["coverage_trained"] >= 6 and r["coverage_ema"] >= 6, (r["coverage_trained"], r["coverage_ema"])
    assert r["coverage_untrained"] <= 3
    assert r["judge_accuracy"] >= 0.7  # measured 0.90 with 150 judge steps
    # the game is alive: D neither won (d_loss -> 0) nor lost everything (d_loss >> 2 log 2 = 1.386)
    assert 0.3 < r["d_loss_last"] < 2.0 and 0.3 < r["g_loss_last"] < 3.0, (r["d_loss_last"], r["g_loss_last"])


def _check_03(r: dict) -> None:
    # measured on a 2-core CPU, smoke (offline: font digits; 200 steps, width 16, batch 32, FD on N=128):
    # fd_untrained 61.3 -> fd_final 12.3 (EMA G, 0.20x), fd_real_vs_real 1.25, judge accuracy 0.77,
    # coverage 8/10; identical on reruns. Demand margins, not the values.
    assert r["dataset"] == "digits" and r["source"] in ({"mnist", "font-digits"} if r["online"] else {"font-digits"})
    assert r["steps"] == 200 and r["image_size"] == 32, (r["steps"], r["image_size"])
    assert r["judge_accuracy"] > 0.4, r["judge_accuracy"]  # 10 classes: chance is 0.1
    assert r["fd_real_vs_real"] < 0.2 * r["fd_untrained"], (r["fd_real_vs_real"], r["fd_untrained"])
    assert r["fd_final"] < 0.5 * r["fd_untrained"], (r["fd_final"], r["fd_untrained"])  # measured 0.20x
    assert abs(r["fd_ratio"] - r["fd_final"] / r["fd_real_vs_real"]) < 1e-6 * r["fd_ratio"]
    assert r["coverage_final"] >= 4, r["coverage_final"]  # measured 8/10; an untrained G covers 1
    assert r["target_met"] is False or (r["coverage_final"] == 10 and r["fd_ratio"] <= 5)
    assert r["resume_equal"] is True  # bit-exact resume after an interruption
    assert r["bench_ran"] is True  # bench/gan.py --smoke ran from the repository root
    # checkerboard scores (deterministic, not learning; measured, smoke, busy 2-core CPU): weights of ones
    # k=3 0.19, k=4 0, resize 0; DCGAN init (20 kernels) k=3 0.82, k=4 0.76, resize 0; untrained G (width 16)
    # transposed 0.046, resize 0.0006 (0.012x; widths 32 and 64: below 0.001x)
    assert r["checkerboard_k3_ones"] > 0.1, r["checkerboard_k3_ones"]  # uneven overlap: the 1-2-4 grid
    assert r["checkerboard_k4_ones"] < 1e-6 and r["checkerboard_resize_ones"] < 1e-6
    for k in ("k3", "k4"):  # unbalanced weights bring the pattern back even for k = 4; resize-conv stays flat
        assert r["checkerboard_resize_random"] < 0.01 * r[f"checkerboard_{k}_random"], r
    assert r["checkerboard_untrained_resize"] < 0.2 * r["checkerboard_untrained_transposed"], r


def _check_04(r: dict) -> None:
    # measured on a 2-core CPU, smoke (offline: fables, 51 characters; 2 layers x 64, 150 steps): val loss
    # 3.96 -> 2.38 (uniform 3.93, unigram 3.01); from-scratch attention vs SDPA 2.4e-7, multi-head vs the library
    # 9.7e-8; without the mask a future token changes earlier outputs by 0.34, with it by exactly 0; the copy
    # "cheats" reach 0.004 only when the mask or the shift is missing. Identical on reruns.
    assert r["corpus"] in ({"fables", "tiny-shakespeare"} if r["online"] else {"fables"}), r["corpus"]
    assert r["steps"] == 150 and r["n_layer"] == 2, (r["steps"], r["n_layer"])
    assert r["sdpa_max_diff"] < 1e-5 and r["mha_max_diff"] < 1e-5 and r["perm_equivariance_diff"] < 1e-5
    assert r["max_weight_d1024_raw"] > 2 * r["max_weight_d1024_scaled"]  # unscaled scores saturate the softmax
    assert r["mask_leak_masked"] == 0.0 < r["mask_leak_unmasked"]
    assert r["cheat_loss_no_mask"] < 0.1 and r["cheat_loss_no_shift"] < 0.1  # measured 0.004: copying "works"
    assert r["cheat_loss_honest"] > 0.9 * r["cheat_loss_floor"]  # with mask and shift, copying cannot help
    assert abs(r["loss_init"] - r["uniform_loss"]) < 0.2  # a fresh model is close to uniform over the characters
    assert r["val_loss"] < r["unigram_loss"] - 0.3, (r["val_loss"], r["unigram_loss"])  # measured 2.38 vs 3.01
    assert r["val_loss"] < r["val_loss_initial"] - 1.0, (r["val_loss"], r["val_loss_initial"])  # measured -1.59
    assert r["distinct2_sampled"] > r["distinct2_greedy"]  # greedy decoding repeats itself
    # measured on a busy 2-core CPU, smoke: BPE from scratch == tokenizers' BpeTrainer (Whitespace
    # pre-tokenizer, vocab 500, min_frequency 2): all 322 merges in order, the vocabulary and 4 held-out
    # encodings identical;
    # 3.07 characters per token on held-out English (a character tokenizer: 1.0), 1.02 on held-out Chinese
    assert r["bpe_merges_equal"] and r["bpe_vocab_equal"] and r["bpe_encodings_equal"], r["bpe_merges_equal"]
    assert r["bpe_merges_compared"] > 100, r["bpe_merges_compared"]  # measured 322: a real comparison
    assert r["bpe_chars_per_token"]["held-out English"] > 2.0, r["bpe_chars_per_token"]  # measured 3.07
    # three families: a causal mask leaves earlier outputs exactly unchanged (measured 0), bidirectional
    # self-attention and cross-attention do not (measured 0.48 and 0.46)
    changes = r["family_changes"]
    assert changes["decoder-only, last token changed"] == 0.0, changes
    assert changes["encoder-decoder, last output token changed"] == 0.0, changes
    assert min(changes["encoder-only, last input token changed"],
               changes["encoder-decoder, last input token changed"]) > 0.05, changes
    # KV cache: identical greedy tokens and logits (measured max difference 2.4e-6 on the trained model, 1.8e-7
    # from scratch); the speed-up (1.7x, 60 tokens, busy CPU) is not asserted: timings on a shared CI machine
    # are noise, bench/lm.py --generate measures it
    assert r["kv_tokens_equal"] and r["kv_logits_max_diff"] < 1e-4 and r["kv_scratch_diff"] < 1e-5, r


def _check_05(r: dict) -> None:
    # measured on a busy 2-core CPU (other jobs on the cores; the numbers do not depend on it), smoke (always the
    # offline base: 2 layers x 64, 80 pretraining steps; then 60 fine-tuning steps on the split by answer):
    # perplexity on test answers never seen in training 831 -> 275 (0.33x), on seen answers in a new wording
    # 823 -> 253 (0.31x); with LEARN=False both stay at 1.00x. BLEU and ROUGE are 0 for both models in smoke (60
    # steps teach no whole answer), so the learned-vs-untrained margin is on perplexity. A random split of the pairs
    # put 61% of the test answers into training. Copy-the-input logits score 4e-6 on the seed code's unshifted loss
    # and 19.9 on the causal-LM loss; the overfitting run stopped at step 30 (best 10).
    assert r["source"] == "offline base", r["source"]
    # 6:2:2 of 764 pairs by answer, then 16 training pairs set aside as seen answers in a new wording
    assert (r["train_pairs"], r["val_pairs"], r["test_pairs"], r["seen_pairs"]) == (437, 160, 151, 16)
    assert r["answers_crossing"] == 0 and r["random_split_leak"] > 0.5, r["random_split_leak"]  # measured 0.61
    assert r["ppl_after"] < 0.6 * r["ppl_before"], (r["ppl_before"], r["ppl_after"])  # unseen: 0.33x (untrained 1.0x)
    assert r["ppl_after_seen"] < 0.6 * r["ppl_before_seen"], (r["ppl_before_seen"], r["ppl_after_seen"])  # 0.31x
    assert r["seed_loss_copycat"] < 0.01 and r["right_loss_copycat"] > 5
    assert r["early_stopped"] is True and r["overfit_best_step"] < r["overfit_stop_step"] < 120
    assert len(r["decoding"]) == 7 and all(0 <= row["distinct_2"] <= 1 for row in r["decoding"])
    sampled = [row for row in r["decoding"] if row["strategy"].startswith(("sampling", "top-"))]
    assert all(row["words"] > 0 for row in sampled)  # sampling never stops at once
    assert r["n_answered"] == 16 and set(r["scores"]) == {"unseen/base", "unseen/fine-tuned", "seen/base", "seen/fine-tuned"}
    assert r["reload_equal"] is True
    # section 3: transformers' GPT2LMHeadModel returns loss None without labels; with labels it equals our shifted loss
    assert r["loss_without_labels_is_none"] is True and r["hf_loss_matches"] is True
    # section 7: the from-scratch filters equal lm.filter_logits and transformers' warpers on identical logits, and the
    # from-scratch decoders give the same tokens as transformers' generate and aigc_lib's loops (exact equality)
    assert r["filters_match"] is True and r["filter_kept"]["top-k 10"] == 10, r["filter_kept"]
    assert set(r["decode_match"]) == {"greedy", "beam 4", "top-k 10", "T 0.7 + top-p 0.9"}, r["decode_match"]
    assert all(m["transformers"] and m["aigc_lib"] for m in r["decode_match"].values()), r["decode_match"]
    assert r["temperature_ignored_without_sampling"] is True  # generate without do_sample ignores temperature


def _check_06(r: dict) -> None:
    # measured on a busy 2-core CPU (other jobs on the cores; the numbers do not depend on it), smoke (offline base
    # 2 layers x 64, context 128; 24 steps each, LoRA r=4 at 10x lr; split by answer as in 05): perplexity on test
    # answers never seen in training base 831 -> full 449 (0.54x), LoRA 750 (0.90x); on seen answers in a new
    # wording 823 -> 423 (0.51x), 742 (0.90x); with LEARN=False all stay at the base's (1.00x). BLEU/ROUGE are 0
    # for every model in smoke. LoRA trains 3.3% with 1.04 MiB of training state vs 3.65; adapter 41 KB vs 961 KB;
    # merge max |dlogit| 1.9e-6, 8/8 greedy answers equal; zero-init and reload diffs exactly 0; the no-transpose
    # merge is off by 0.72. In 128 tokens no few-shot example fits, so smoke checks the code path of section 1 only.
    assert r["source"] == "offline base", r["source"]  # smoke always uses the offline base
    assert r["steps_full"] == r["steps_lora"] == r["steps"] == 24  # the same budget for both runs
    assert math.isclose(r["lr_lora"], 10 * r["lr_full"])
    assert r["lora_share"] < 0.05, r["lora_share"]
    assert r["memory_lora_mib"] < 0.5 * r["memory_full_mib"], (r["memory_lora_mib"], r["memory_full_mib"])  # 0.28x
    assert r["seen_pairs"] == 16 and r["answers_crossing"] == 0, (r["seen_pairs"], r["answers_crossing"])
    assert r["ppl_full"] < 0.8 * r["ppl_base"], (r["ppl_full"], r["ppl_base"])  # unseen answers: measured 0.54x
    assert r["ppl_lora"] < 0.95 * r["ppl_base"], (r["ppl_lora"], r["ppl_base"])  # unseen answers: measured 0.90x
    assert r["ppl_full_seen"] < 0.8 * r["ppl_base_seen"], (r["ppl_full_seen"], r["ppl_base_seen"])  # 0.51x
    assert r["zero_init_diff"] < 1e-5 and r["reload_diff"] < 1e-5, (r["zero_init_diff"], r["reload_diff"])
    assert r["merge_diff"] < 1e-3 and r["merge_answers_equal"] is True, r["merge_diff"]
    assert r["adapter_bytes"] < 0.2 * r["full_bytes"], (r["adapter_bytes"], r["full_bytes"])  # measured 0.043x
    assert r["conv1d_transpose_error"] > 0.01, r["conv1d_transpose_error"]
    assert r["target_met"] is (r["lora_vs_full"] <= 1.10)
    icl = r["icl_ppl"]
    assert r["icl_ks"] == [0, 1, 2, 4] and len({v[0] for v in icl.values()}) == 1  # k = 0 is one prompt for all
    assert all(math.isfinite(x) and x > 1 for v in icl.values() for x in v), icl
    assert r["retrieval_precision"] > 0.3, r["retrieval_precision"]  # measured 0.66; random shots 0.02
    # section 4, same steps and schedule: bottleneck adapters (m=8, 4 adapters, 4,384 parameters, 10x lr)
    # and prefix tuning (N=8, 2,048 parameters, 100x lr), measured on a busy 2-core CPU, smoke: adapter
    # 831 -> 779 (0.94x); prefix 836 -> 820 (0.98x) on its own tokens (cut to 120: 9,218 of 9,320).
    # LEARN=False: the adapters stay the identity (1.00x), the untrained random prefix gives 833 (0.996x)
    assert r["adapter_init_diff"] == 0.0, r["adapter_init_diff"]  # W_up = 0: exactly the base at the start
    assert r["trainable_adapter"] == r["adapter_formula"], (r["trainable_adapter"], r["adapter_formula"])
    assert r["steps_adapter"] == r["steps_prefix"] == r["steps"], (r["steps_adapter"], r["steps_prefix"])
    assert r["ppl_adapter"] < 0.97 * r["ppl_base"], (r["ppl_adapter"], r["ppl_base"])  # measured 0.94x
    assert r["ppl_prefix"] < 0.99 * r["ppl_base_prefix_tokens"], (
        r["ppl_prefix"], r["ppl_base_prefix_tokens"])


def _check_07(r: dict) -> None:
    # measured on a 2-core CPU (shared with other jobs), smoke (offline font digits, UNet width 16, 100 steps of
    # batch 16, N = 8 images for FD): loss 1.39 -> 0.090; samplers equal diffusers' exactly (0.0) and the
    # from-scratch loop equals the library's to 2.8e-5; closed form vs iterated noising: mean within 0.81 standard
    # errors, variance within 0.0032, while the wrong formula is 4.1 standard errors off; FD-digits untrained 40.6,
    # DDPM 16.5 (real-vs-real 19.3 at N = 8), DDIM-50 37.5; DDIM took 32 s vs DDPM's 518 s; the seed's objective
    # collapses samples (spread 0.17 vs real 0.35).
    assert r["loss_last"] < 0.3 * r["loss_first"], (r["loss_first"], r["loss_last"])  # 0.065x
    # the ruler behind FD-digits and coverage (chapter 03's cached judge, trained whatever LEARN is): 0.767 on held-out
    # digits, 10 classes (chance 0.10); FD and coverage mean little below 0.5
    assert r["judge_accuracy"] > 0.5, r["judge_accuracy"]
    assert r["sampler_vs_diffusers_max_diff"] < 1e-5, r["sampler_vs_diffusers"]
    assert r["scratch_vs_lib_max_diff"] < 1e-4, r["scratch_vs_lib_max_diff"]
    assert r["closed_form_mean_err_se"] < 3 and r["closed_form_var_err"] < 0.02, (
        r["closed_form_mean_err_se"], r["closed_form_var_err"])
    assert r["closed_form_slip_err_se"] > 3, r["closed_form_slip_err_se"]  # the check can tell a wrong formula
    assert r["fd_ddpm"] < 0.6 * r["fd_untrained"], (r["fd_ddpm"], r["fd_untrained"])  # 0.40x
    assert r["ddim_seconds"] < 0.25 * r["ddpm_seconds"], (r["ddim_seconds"], r["ddpm_seconds"])  # 50 vs 1000 steps
    assert r["spread_wrong"] < r["spread_real"], (r["spread_wrong"], r["spread_real"])
    assert r["num_classes"] == 10 and 1 <= r["coverage_ddpm"] <= 10


def _check_08(r: dict) -> None:
    # measured on a quiet 2-core CPU, smoke (recipe "smoke": VAE 0.24M, text encoder 0.02M, UNet 1.06M; 100 steps
    # each; zero terminal SNR, v-prediction): VAE MSE 0.84 -> 0.024 (unseen images 0.019); UNet loss 0.908 -> 0.293
    # (0.32x; LEARN=False 0.985 -> 0.987); our seven-step loop equals pipe(...) exactly; the judge reads real shapes
    # 100% right. The rescaling written in the notebook equals the library's to 2.4e-7, v exactly.
    assert r["source"] == "local" and r["recipe"] == "smoke", (r["source"], r["recipe"])
    assert r["vae_loss_last"] < 0.1 * r["vae_loss_first"], (r["vae_loss_first"], r["vae_loss_last"])  # 0.029x
    assert r["vae_mse"] < 0.05, r["vae_mse"]  # unseen images; 0.019 measured
    assert r["unet_loss_last"] < 0.5 * r["unet_loss_first"], (r["unet_loss_first"], r["unet_loss_last"])  # 0.32x
    assert r["loop_vs_pipe_max_diff"] < 1e-5, r["loop_vs_pipe_max_diff"]
    assert r["rescale_diff"] < 1e-5 and r["v_diff"] < 1e-5, (r["rescale_diff"], r["v_diff"])
    # the leak: a matched filter reads the position from x_999 of SD 1.5's schedule 30.0% of the time (chance 11.1%;
    # 400 held-out latents), from pure noise (zero terminal SNR) 12.3%
    chance = r["leak_chance"]["position"]
    assert r["leak_t999"]["SD 1.5/position"] > 2 * chance, r["leak_t999"]
    assert r["leak_t999"]["zero terminal SNR/position"] < 1.6 * chance, r["leak_t999"]
    assert {"model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(r["reload_files"])
    assert r["judge_real"]["all"] > 0.95, r["judge_real"]  # the judge, not the generator, is checked here
    assert set(r["guidance_sweep"]) == set(r["guidance_chance"]) == {"1.0", "3.0", "7.5"}
    # Does the UNet read the caption? Held-out latents, the same noise and timesteps: own captions 0.219, shuffled
    # 0.403 (45.7% lower; LEARN=False: 0.9837 vs 0.9833, -0.0%). Demand 20%.
    assert r["caption_loss_own"] < 0.8 * r["caption_loss_shuffled"], (r["caption_loss_own"], r["caption_loss_shuffled"])
    # Prompt following in the pictures: position right for 47.2% of 36 prompts at the best guidance (w = 1), chance
    # (the same images against shuffled prompts) 11.9%; LEARN=False 8.3% vs 7.8%. Demand 25% and twice chance.
    best, best_chance = r["best"], r["guidance_chance"][str(r["best_guidance"])]
    assert best["position"] > max(0.25, 2 * best_chance["position"]), (best, best_chance)
    # FD in the judge's features to 36 real images: trained 43.2, the same parts untrained 69.9 (0.62x); with
    # LEARN=False 74.8 vs 69.9 (1.07x). Demand 0.8x.
    assert r["fd_trained"] < 0.8 * r["fd_untrained"], (r["fd_trained"], r["fd_untrained"])
    assert set(r["steps_sweep"]) == {"2", "5", "10"} and set(r["img2img"]) == {"0.3", "0.9"}
    assert r["params"]["UNet"] > r["params"]["VAE"] > r["params"]["text encoder"] > 0
    # caption dropout written out drops the same captions as DiffusionStep.drop_captions from the same seed; over the
    # 2,000 smoke captions 10.0% are dropped (asked: 10%). Measured on a busy 2-core CPU, smoke.
    assert r["caption_dropout_equal"] and abs(r["caption_dropout_share"] - 0.1) < 0.03, r["caption_dropout_share"]
    # the storing attention processor (softmax written out) gives the UNet's output of diffusers' default processor
    # (AttnProcessor2_0) to float rounding: 0.6e-6 to 1.0e-6 measured in three runs (LEARN=False the same). The smoke
    # model's maps are flat: each word puts 11.0-11.2% of its attention in the cell its prompt names, chance and a
    # uniform map 11.1%, so the maps are not asserted here; the learning checks above fail with LEARN=False.
    assert r["attn_processor_diff"] < 1e-4, r["attn_processor_diff"]
    assert set(r["attn_mass"]) == set(r["attn_mass_chance"]) == {"color", "shape", "position"}, r["attn_mass"]


def _check_09(r: dict) -> None:
    # measured on a quiet 2-core CPU, smoke (mini SD "smoke", 1.06M-parameter UNet; LoRA r=4, 150 steps, real prior):
    # the smoke base draws a star for 11% of 27 star prompts (circles 44%, diamonds 44%); after LoRA 11% with prior
    # preservation, 22% without: too few prompts and steps to judge pictures. B = 0 start equals the base exactly.
    assert r["source"] == "local" and r["recipe"] == "smoke", (r["source"], r["recipe"])
    assert 0 < r["lora_share"] < 0.05 and r["trainable_lora"] > 0, r["lora_share"]
    assert r["zero_init_diff"] == 0.0, r["zero_init_diff"]  # B = 0: the adapted UNet starts as the base
    # held-out star denoising loss (64 unseen star images, the same noise at 8 timesteps for every model): 0.2822 ->
    # 0.2266 after 150 LoRA steps with the real prior, a 19.7% drop; in a fresh-clone CI run of 2026-12-06 0.2780 ->
    # 0.2502, a 10.0% drop (the smoke base is rebuilt whenever its code changes, and the drop varies with it). With
    # LEARN=False the adapter keeps B = 0 and the loss does not move (0.0%). Demand half the lowest measured drop.
    drop = 1 - r["dloss_star_after"] / r["dloss_star_before"]
    assert drop > 0.05, (r["dloss_star_before"], r["dloss_star_after"], drop)
    assert r["adapter_bytes"] < 0.1 * r["unet_bytes"], (r["adapter_bytes"], r["unet_bytes"])  # 0.024x measured
    assert r["reload_diff"] < 1e-5 and r["unload_diff"] == 0.0, (r["reload_diff"], r["unload_diff"])
    assert r["fuse_diff"] < 1e-3 and r["unfuse_diff"] < 1e-3, (r["fuse_diff"], r["unfuse_diff"])  # float rounding
    for key in ("star_before", "star_after", "old_before", "old_after", "star_after_no_prior", "old_after_no_prior"):
        assert set(r[key]) == {"color", "shape", "position", "all"} and 0 <= r[key]["all"] <= r[key]["shape"] <= 1
    assert abs(sum(r["star_drawn_before"].values()) - 1) < 1e-4 and r["forgetting_points_no_prior"] is not None


def _check_10(r: dict) -> None:
    # measured in smoke on a 2-core CPU (2026-12-07; the models are the library's smoke builds, font digits offline)
    assert r["learn"] is True
    # instruments, no learning: two samples of one Gaussian (F = 16, N = 50..400) gave FD x N within 157-183 (ratio
    # 1.17) and |KID| <= 0.036; demand a ratio under 1.5 and |KID| under 0.1
    assert max(r["gauss_fd_times_n"]) < 1.5 * min(r["gauss_fd_times_n"]), r["gauss_fd_times_n"]
    assert max(abs(k) for k in r["gauss_kid"]) < 0.1, r["gauss_kid"]
    # one image per class: IS 7.79 against 3.98 for real digits, recall 0.03
    assert r["is_one_per_class"] > 1.5 * r["is_real"], (r["is_one_per_class"], r["is_real"])
    assert r["quality"]["one image per class"]["recall"] < 0.2, r["quality"]["one image per class"]
    zh, unrelated = r["zh_scores"][0], r["zh_scores"][3]  # a paraphrase: BLEU 13a 0.0 -> zh 34.5; ROUGE-1 0 -> 0.68
    assert zh["BLEU 13a"] == 0.0 and zh["BLEU zh"] > 20 and zh["ROUGE-1 default"] == 0.0 and zh["ROUGE-1 char"] > 0.5, zh
    assert unrelated["BLEU zh"] < 10 and unrelated["ROUGE-1 char"] < 0.2, unrelated  # 2.7 and 0.07 measured
    random_split, by_answer = r["leaks"]["random split (by pair)"], r["leaks"]["qa_split (by answer)"]
    assert random_split["exact"] > 50 and by_answer["exact"] == 0, r["leaks"]  # 93 identical vs 0 measured
    assert r["bt_rmse"] < 0.35 and r["bt_spread"] < 1e-6 and r["elo_spread"] > 20, (r["bt_rmse"], r["elo_spread"])
    assert r["power_n"] == 783 and r["first_wins"] > 0.53, (r["power_n"], r["first_wins"])  # 58% left wins
    # learning (LEARN=False: the same architectures untrained, the assistant's base instead of the assistant):
    # DCGAN FD-digits final 11.8 vs early 57.2 (real vs real 0.82), and ranked correctly in every subset
    assert r["fd_final"] < 0.5 * r["fd_early"], (r["fd_final"], r["fd_early"])
    assert r["rank_share"]["DCGAN final < DCGAN early"][-1] >= 0.8, r["rank_share"]
    # truncation to psi = 0.5: recall 0.38 -> 0.0 (quick: 0.97 -> 0.35); precision rose in smoke (0.85 -> 1.0) but fell
    # in quick (0.58 -> 0.03), so only recall and FD are checked
    plain, truncated = r["truncation"]["None"], r["truncation"]["0.5"]
    assert truncated["recall"] < plain["recall"] and truncated["FD"] > plain["FD"], r["truncation"]
    assert r["ddpm_loss"] < 0.3 * r["ddpm_loss_untrained"], (r["ddpm_loss"], r["ddpm_loss_untrained"])  # 0.10 vs 1.07
    # shop assistant: test perplexity 830.6 (base) -> 397.6 (0.48x); character GPT 3.53 bits per byte (untrained:
    # about log2 of its 70-odd characters, 6.1)
    assert r["test_ppl_assistant"] < 0.7 * r["test_ppl_base"], (r["test_ppl_assistant"], r["test_ppl_base"])
    assert r["bpb"]["character GPT"]["bpb"] < 5.0, r["bpb"]
    assert 0.0 <= r["judge_position_flip"] <= 1.0 and r["judge_source"].startswith("offline"), r["judge_source"]


def _check_11_own(r: dict) -> None:
    # Thresholds measured on the smoke profile, 2026-12-07, busy 2-core CPU (seed 0). Baselines named beside each.
    t = r["text_watermark"]
    top = t["by_length"][str(max(int(k) for k in t["by_length"]))]
    # the learned part of section 1: the tuned assistant vs its base model on unseen answers
    # (measured 397.6 vs 830.6 = 0.48x; LEARN=False uses the base model itself: 1.0x)
    assert t["test_ppl_assistant"] < 0.75 * t["test_ppl_base"], (t["test_ppl_assistant"], t["test_ppl_base"])
    assert t["matches_transformers"]
    # watermarked vs plain text at the longest length (79 tokens): mean z 9.81 vs 0.13; TPR 1.00, FPR 0.00 at z > 4
    assert top["z_watermarked"] > 6.0 and abs(top["z_plain"]) < 1.5, top
    assert top["tpr_z4"] >= 0.9 and top["fpr_z4"] <= 0.05, top
    assert t["fpr_human_z4"] <= 0.02, t["fpr_human_z4"]  # human answers: mean z -0.48, none above 4
    # the wrong key sees no watermark: 0.23 (smoke; quick 2.30 counting repeated bigrams, which the
    # distinct-bigram count removes)
    assert abs(t["z_unique_bigrams"]["wrong key"]) < 2.0, t["z_unique_bigrams"]
    assert t["z_wrong_key"] < 0.5 * top["z_watermarked"], (t["z_wrong_key"], top)
    assert t["z_first50_with_prompt"] < t["z_first50"], t  # 6.03 < 7.72: prompt tokens dilute the count
    rob = t["robustness"]  # 9.81 -> 7.75 (10% replaced) -> 4.53 (30%)
    assert rob["none"]["z_mean"] > rob["10% tokens replaced"]["z_mean"] > rob["30% tokens replaced"]["z_mean"]
    q = t["quality"]  # mean z over 50 tokens grows with delta: 3.81, 7.67, 11.40 (gamma 0.25)
    assert q["gamma=0.25, delta=1"]["z"] < q["gamma=0.25, delta=2"]["z"] < q["gamma=0.25, delta=4"]["z"], q

    im = r["image_watermark"]["table"]
    # clean round trip 1.000 for both methods; dwtDctSvd 0.857 vs dwtDct 0.500 after JPEG q75; unmarked 0.50
    assert im["dwtDct"]["png"] >= 0.99 and im["dwtDctSvd"]["png"] >= 0.99, im
    assert im["dwtDctSvd"]["jpeg_q75"] > im["dwtDct"]["jpeg_q75"] + 0.15, im
    assert all(abs(v - 0.5) < 0.15 for v in r["image_watermark"]["unmarked"].values()), r["image_watermark"]

    lab = r["labels"]  # the implicit label reads back from the PNG and is gone after a pixels-only re-save
    assert lab["round_trip_ok"] and not lab["label_after_png_strip"] and not lab["label_after_jpeg"], lab
    assert lab["watermark_after_strip"]["png"] >= 0.99, lab  # measured 1.000: the pixels keep the mark


# section 3, detecting generated content (its own thresholds and comments)
def _check_11_detect(r: dict) -> None:
    d = r["detect"]
    img, floor = d["image"], d["image_untrained"]
    # trained detector, held-out real digits vs held-out DCGAN samples: AUC measured 1.000 smoke, 0.967 quick (quiet)
    # (2026-12-07, busy 2-core CPU)
    assert img["auc_dcgan"] > 0.9, img
    # balanced accuracy at threshold 0: measured 100% smoke, 88.9% quick (quiet); the untrained detector 50% in both
    assert img["balanced_acc_dcgan"] > 0.8, img
    assert img["balanced_acc_dcgan"] > floor["balanced_acc_dcgan"] + 0.25, (img, floor)
    # temperature turns the white-box log-likelihood detector around: AUC at T = 0.7 vs 1.3 measured
    # 0.70 vs 0.00 smoke, 0.49 vs 0.04 quick (2026-12-07)
    auc_t = d["auc_by_temperature"]["log-likelihood"]
    assert auc_t[0] > auc_t[-1] + 0.3, auc_t


def _check_11(r: dict) -> None:
    """Notebook 11's checks; under LEARN=False the assistant/base perplexity ratio (and section 3) fail."""
    _check_11_own(r)
    _check_11_detect(r)


def _check_12_filters(r: dict) -> None:
    f, b = r["filters"], r["bias"]
    m = f["methods"]
    assert m["prompt filter"]["direct_blocked"] == 1.0, "the blocklist must block every direct prompt"
    # the output classifier learned red: it flagged 100% of held-out red shapes, 12-16% of the others
    # (measured smoke and quick, 2026-12-07, busy 2-core CPU); an untrained one flags by chance
    assert f["classifier_real"]["tpr"] >= 0.9 and f["classifier_real"]["fpr"] <= 0.3, f["classifier_real"]
    # ESD moved the UNet towards its target: ESD loss 0.353 -> 0.198 smoke, 0.997 -> 0.300 quick (measured
    # 2026-12-07, busy 2-core CPU); lr 0 leaves it where it was
    assert f["esd_loss"]["ESD"] < 0.8 * f["esd_loss"]["before"], f["esd_loss"]
    # the skewed fine-tune learned its data: held-out loss 0.480 -> 0.382 smoke, 0.598 -> 0.159 quick
    assert b["heldout_loss"]["skewed"] < 0.9 * b["heldout_loss"]["base"], b["heldout_loss"]
    if f["recipe"] != "smoke":  # the smoke mini SD draws no red at all: rates only mean something from quick on
        # quick, measured 2026-12-07: unguarded 100% red on direct prompts; ESD 35%; blocklist leaves 36% of
        # paraphrases red; skewed fine-tune 99.4% red (base 0%), rebalanced 40.6%, balanced colour prompts 22.2%
        assert m["no guard"]["direct"] >= 0.8, m["no guard"]
        assert m["ESD"]["direct"] <= m["no guard"]["direct"] - 0.3, m["ESD"]
        assert m["prompt filter"]["paraphrased"] >= 0.1, "paraphrases should slip past the blocklist"
        s = b["settings"]
        assert s["fine-tuned on skewed data"]["red"]["estimate"] >= 0.7, s["fine-tuned on skewed data"]["red"]
        assert s["skewed + balanced colour prompts"]["red"]["estimate"] <= 0.6
        assert s["rebalanced data"]["red"]["estimate"] < s["fine-tuned on skewed data"]["red"]["estimate"] - 0.2


def _check_12(r: dict) -> None:
    """Chapter 12: adversarial training buys robustness, canaries repeated 20 times are exposed and deduplication
    removes that, the template probe sees what fine-tuning taught; plus the filters/bias section's check."""
    a, p, q = r["adversarial"], r["privacy"], r["lm_probe"]
    # FGSM's closed form on a linear model (delta = eps sign(w), logit change eps ||w||_1): float error only
    assert a["closed_form_error"] < 1e-4, a["closed_form_error"]
    # measured smoke 2026-12-07 busy 2-core CPU: PGD-10 accuracy at eps 0.1 on 200 held-out digits, standard MLP
    # 0.45, adversarially trained 0.585 (+0.135); clean 0.86 / 0.865. LEARN=False: both untrained, equal (~0.1)
    assert a["robust_adversarial"] > a["robust_standard"] + 0.06, (a["robust_standard"], a["robust_adversarial"])
    assert a["clean_standard"] > 0.6 and a["clean_adversarial"] > 0.6, (a["clean_standard"], a["clean_adversarial"])
    # the judge under attack (an instrument, trained with LEARN either way): clean 0.92 -> PGD-5 at eps 0.3: 0.005
    pgd_curve = next(v for k, v in a["curves"].items() if k.startswith("digits judge, PGD"))
    assert pgd_curve[0] > 0.7 and pgd_curve[-1] < 0.5 * pgd_curve[0], pgd_curve
    # measured smoke 2026-12-07 busy 2-core CPU: exposure (bits, of 13.29) of the canaries inserted 20 times 11.4,
    # never inserted 1.4, untrained model 1.3; after deduplication 1.1 (an earlier canary draw: 12.0 / 2.1 / 1.6).
    # LEARN=False: all about 1-2 bits
    e = p["exposure"]
    assert e["x20"] > e["never"] + 4, e
    assert e["x20"] > p["exposure_untrained"]["x20"] + 4, (e, p["exposure_untrained"])
    assert p["dedup_exposure_x20"] < e["x20"] - 3, (p["dedup_exposure_x20"], e["x20"])
    # (the tiny GPT's membership AUC, 0.53-0.56 trained vs 0.50 untrained in smoke runs, is too close to 0.5 to assert on)
    # measured smoke 2026-12-07 busy 2-core CPU: fine-tuning on the shop raised log p(shop word) - log p(docs word)
    # by +3.20 nats [+3.14, +3.25]; LEARN=False (the assistant is the base model): exactly 0
    assert q["domain_shift"]["estimate"] > 1.0 and q["domain_shift"]["low"] > 0, q["domain_shift"]
    _check_12_filters(r)  # the safety-filter / bias sections' check


def _check_sound_13(r: dict) -> None:
    """Section 1 (sound as data): physics and arithmetic, measured in the run."""
    # This section trains nothing, so these checks hold under LEARN=False too (by design); the chapter's other
    # sections carry the checks that fail when learning is off.
    s = r["sound"]
    assert abs(s["tone_peak_hz"] - s["tone_hz"]) <= s["tone_bin_hz"], s        # peak within one bin of f
    assert abs(s["alias_measured_hz"] - s["alias_predicted_hz"]) <= 2, s      # 11 kHz at 16 kHz -> 5 kHz
    assert abs(s["downsample_alias_measured_hz"] - s["downsample_alias_predicted_hz"]) <= 4, s  # 6 kHz -> 2 kHz
    assert s["resample_suppression_db"] > 40, s      # anti-aliasing filter: measured 65.2 dB, smoke, 2026-12-07
    sc = s["gl_sc"]                                  # [random phase, GL at increasing iteration counts]
    assert all(b < a for a, b in zip(sc, sc[1:])), s  # Griffin-Lim converges: more iterations, lower SC
    assert sc[-1] < 0.3 * sc[0], s                   # measured 0.057 vs 0.623 (ratio 0.09), smoke, 2026-12-07
    assert s["gl_sc_true_phase"] < 0.01 < sc[-1], s  # the true phase is exact; GL is not
    assert s["mel_gl32_sc"] > sc[s["gl_iters"].index(32)], s   # the mel round trip costs extra
    assert s["mulaw_snr_quiet_db"] > s["linear_snr_quiet_db"] + 10, s   # measured 35.5 vs 12.2 dB, smoke, 2026-12-07
    assert s["wav_roundtrip_max_error"] <= 1 / 32768 + 1e-7, s           # 16-bit PCM: within one step
    assert s["wav_errors_caught"] == s["wav_bad_files"], s
    assert abs(s["wrong_rate_peak_hz"] - s["tone_hz"] * s["wrong_rate_ratio"]) <= 2, s
    assert s["clip_peak_before"] > 1, s              # measured peak 1.77, smoke, 2026-12-07
    assert s["clip_distortion_db"] > s["mix_distortion_db"] + 40, s  # measured -13.8 vs -103.7 dB, smoke, 2026-12-07


def _check_symbolic_13(r: dict) -> None:
    """The melody GPT beats its untrained twin on rhythm, key and test loss, on disjoint train/test melodies."""
    s = r["symbolic"]
    tr, un = s["trained"], s["untrained"]
    assert s["overlap_train_test"] == 0, "a test melody is also a training melody"
    assert s["test"]["in_key"] == 1.0, "the data's melodies are written in their key"
    # rhythm validity: measured 0.72 trained vs 0.00 untrained (smoke, 48 samples, 2026-12-07, busy 2-core CPU)
    assert tr["rhythm_validity"] >= 0.5 and tr["rhythm_validity"] > un["rhythm_validity"] + 0.3, (tr, un)
    # in-key rate: measured 0.74 trained vs 0.61 untrained, chance 7/12 = 0.58 (smoke, 2026-12-07, busy 2-core CPU)
    assert tr["in_key"] is not None and tr["in_key"] >= 0.66, tr
    assert un["in_key"] is None or tr["in_key"] > un["in_key"] + 0.05, (tr, un)
    # pitch-class distance to the training melodies: measured 0.23 trained vs 0.29 untrained (smoke, 2026-12-07)
    assert un["pitch_class_distance"] is None or tr["pitch_class_distance"] < un["pitch_class_distance"] - 0.03
    # test loss: measured 1.20 trained vs 4.44 untrained nats/token (smoke, 2026-12-07, busy 2-core CPU)
    assert s["test_loss"]["trained"] < 0.6 * s["test_loss"]["untrained"], s["test_loss"]


def _check_specdiff_13(r: dict) -> None:
    """The spectrogram UNet learned: its loss fell, and its sounds are closer to real ones than the control's."""
    s = r["specdiff"]
    scores = s["scores"]
    trained = [scores[f"trained, w={w:g}"] for w in s["guidance_scales"]]
    untrained = scores["untrained, w=1"]
    # the loss fell from about 1 (predicting eps = 0) at the start: measured 0.049 after 60 steps, smoke,
    # 2026-12-07, busy 2-core CPU; None when LEARN is False (no steps were taken)
    assert s["final_loss"] is not None and s["final_loss"] < 0.5, s["final_loss"]
    # generated sounds nearer the real ones than the untrained UNet's: best trained FD / untrained FD measured
    # 0.53 (29.7 vs 55.7, smoke, DDIM 10 steps with eta 1) and 0.17 (8.1 vs 46.9, quick), 2026-12-07, 2-core CPU;
    # 1.00 when LEARN is False (the same weights); 0.9 leaves room for recipe and seed changes
    best_fd = min(t["fd"] for t in trained)
    assert best_fd < 0.9 * untrained["fd"], (best_fd, untrained["fd"])
    # the accuracy on the requested class is no worse than the control's: both measured 16.7% (chance) in smoke,
    # 2026-12-07 (a 60-step model is heard as one class); the quick profile is where accuracy separates
    assert scores[s["best"]]["accuracy"] >= untrained["accuracy"], (scores[s["best"]]["accuracy"], untrained["accuracy"])
    # the decoder's ceiling is far above chance: Griffin-Lim of real clips measured 100% accuracy (smoke, N = 24)
    # and 87.5% (quick), 2026-12-07; chance is 1/6
    assert scores["Griffin-Lim ceiling"]["accuracy"] > 0.5, scores["Griffin-Lim ceiling"]["accuracy"]
    if s["profile"] != "smoke":  # quick, measured 2026-12-07 on a quiet 2-core CPU: 75.8% at w = 3 (untrained 16.7%)
        assert scores[s["best"]]["accuracy"] >= 0.6, scores[s["best"]]["accuracy"]


def _check_online_13(r: dict) -> None:
    """Section "real models (online)": r["online_models"] well-formed, online or not; the resampling helper right.

    Nothing here is trained, so it does not depend on LEARN and does not fail under LEARN=False: the chapter's
    LEARN-sensitive checks are in the other sections. Offline (CI), ran is False with a reason.
    """
    o = r["online_models"]  # the section's numbers; r["online"] is the run's own hub flag (a bool)
    assert isinstance(o["ran"], bool), o["ran"]
    if o["ran"]:
        assert o["clips"], "ran is True but no clip was recorded"
        for clip in o["clips"]:
            assert clip["seconds"] > 0 and clip["generate_s"] > 0, clip
            assert isinstance(clip["sampling_rate"], int) and clip["sampling_rate"] > 0, clip
    else:
        assert isinstance(o["reason"], str) and o["reason"], o
    h = o["helper_check"]
    # a 440 Hz, 0.5 s tone at 32 kHz: resampled it keeps pitch and length (measured 440.0 Hz, 0.50 s, smoke,
    # 2026-12-07); read at 16 kHz unconverted it halves its pitch and doubles its length (measured 220.0 Hz, 1.00 s)
    assert abs(h["resampled_hz"] - h["tone_hz"]) < 0.01 * h["tone_hz"], h
    assert abs(h["resampled_seconds"] - h["tone_seconds"]) < 0.01, h
    assert abs(h["wrong_rate_hz"] - h["tone_hz"] / 2) < 0.01 * h["tone_hz"], h
    assert abs(h["wrong_rate_seconds"] - 2 * h["tone_seconds"]) < 0.01, h


def _check_13(r: dict) -> None:
    """Chapter 13: the physics of sound holds (tone peaks, aliases, Griffin-Lim converges), the melody GPT beats its untrained twin on in-key rate, the spectrogram diffusion model makes the requested class more often than the untrained one, and the online section reports which path ran."""
    _check_sound_13(r)
    _check_symbolic_13(r)
    _check_specdiff_13(r)
    _check_online_13(r)


def _check_service_14(r: dict) -> None:
    """Retrieval, refusal and injection: rules and BM25, nothing trained (they hold under LEARN=False too)."""
    s = r["service"]
    ret = s["retrieval"]
    # measured 2026-12-07 (smoke = every profile: BM25 has no training): EN 89.4% (random 4.2%), ZH 100% (9.3%)
    assert ret["en"] >= 0.8 and ret["zh"] >= 0.9 and ret["random_en"] < 0.1 and ret["random_zh"] < 0.15, ret
    assert s["refusal"]["en"] == s["refusal"]["zh"] == 1.0, s["refusal"]  # measured 10/10 each
    for lang, inj in s["injection"].items():  # measured 100% -> 0% in both languages
        assert inj["naive_unguarded"] >= 0.8 and inj["naive_guarded"] == 0.0, (lang, inj)
    a = s["assistant"]
    scores = a["scores"]
    # the extractive reference (no training), measured 2026-12-07: EN 0.510 (answer rate 0.60: order questions and
    # unsure retrievals go to a human), ZH 0.978
    assert scores["extractive + rules"]["accuracy"] >= 0.45 and a["zh_extractive"]["accuracy"] >= 0.9, a
    # the RAG fine-tune learns: held-out target loss, smoke 6.13 -> 5.47 (lr 0: unchanged); quick 3.38 -> 0.82
    assert a["rag"]["val_target_loss"] < a["rag"]["val_target_loss_before"] - 0.4, a["rag"]
    if r["profile"] != "smoke":  # quick (busy CPU, 2026-12-07): fine-tuned + rules 0.26 against untrained 0.03
        assert scores["RAG fine-tuned + rules"]["accuracy"] > scores["RAG, untrained + rules"]["accuracy"] + 0.1
    for name, inj in a["injection_lm"].items():  # the rules hold whatever the model: 0% after, measured
        assert inj["after"] == 0.0, (name, inj)


def _check_sentiment_14(r: dict) -> None:
    """The small classifier beats the majority class on held-out templates; the LoRA run's loss falls."""
    rows = r["sentiment"]["rows"]
    # measured 2026-12-07: smoke accuracy EN 0.527 / ZH 0.707 against majority 0.433 / 0.387, quick 0.443 / 0.677
    # against 0.397 / 0.387; LEARN=False (lr 0, the random initial network): smoke EN 0.393, ZH 0.46.
    # Margins 0.04 (EN) and 0.2 (ZH).
    for lang, margin in (("en", 0.04), ("zh", 0.2)):
        got, base = rows[lang]["small classifier"]["accuracy"], rows[lang]["majority class"]["accuracy"]
        assert got >= base + margin, (lang, got, base)
        for row in rows[lang].values():
            assert 0 <= row["ece"] <= 1 and 0 <= row["macro_f1"] <= 1, row
    # LoRA's label-word loss, read back from TensorBoard: smoke EN 5.06 -> 1.18, ZH 5.75 -> 2.25 (quick 5.65 -> 0.21,
    # 5.77 -> 0.85); lr 0: no fall
    for lang, t in r["tracking"].items():
        assert t["points"] >= 2 and t["last_loss"] < 0.6 * t["first_loss"], (lang, t)
    if r["profile"] != "smoke":  # quick: the LoRA GPT-2 (measured EN macro-F1 0.471) beats its zero-shot prompt (0.202)
        assert rows["en"]["LoRA"]["macro_f1"] > rows["en"]["zero-shot prompt"]["macro_f1"] + 0.1, rows["en"]
    fin = r["sentiment"]["finbert"]
    assert fin["ran"] or fin["reason"], fin


def _check_recsys_14(r: dict) -> None:
    """Both recommenders beat popularity; the two-tower model ranks new items from their text."""
    rec = r["recsys"]
    # smoke, measured 2026-12-07: hit@10 MF 0.300, two-tower 0.270, popularity 0.132, random 0.046; cold start
    # 0.610 against random 0.230 (quick: 0.280, 0.318; cold 0.636). LEARN=False (lr 0, random vectors) ranks at
    # about the random rate.
    for name in ("matrix factorisation", "two-tower"):
        assert rec[name]["model_hit@10"] >= 1.5 * rec[name]["popularity_hit@10"], (name, rec[name])
        assert rec[name]["model_ndcg@10"] > rec[name]["popularity_ndcg@10"], (name, rec[name])
    assert rec["cold"]["model_hit@10"] >= 2 * rec["cold"]["random_hit@10"], rec["cold"]


def _check_adcopy_14(r: dict) -> None:
    """The template baseline obeys tone and length; LoRA's slogan loss falls; the posters carry both labels."""
    ad = r["adcopy"]
    for lang in ("en", "zh"):
        assert ad["rows"][lang]["template"]["length_ok"] == ad["rows"][lang]["template"]["tone_ok"] == 1.0
    if r["profile"] != "smoke":  # quick (busy CPU, 2026-12-07): LoRA length_ok 0.51 where 2-shot prompting wrote
        en = ad["rows"]["en"]    # nothing (0.0); smoke's tiny model writes nothing either way, so no smoke check
        prompted = next(row for name, row in en.items() if name.endswith("-shot prompt"))
        assert en["LoRA"]["length_ok"] >= prompted["length_ok"] + 0.2, en
    en = r["poster"]["posters"]["en"]
    assert en["pixels_match"] and en["label_model"], en


def _check_deploy_14(r: dict) -> None:
    """int8 shrinks the checkpoint without wrecking perplexity."""
    fp32, int8 = r["deploy"]["rows"]
    # measured 2026-12-07: smoke 0.967 -> 0.811 MB (embeddings stay fp32 in this tiny model), perplexity
    # 970.6 -> 971.4 (+0.08%); quick 5.42 -> 3.60 MB, 589.6 -> 591.1 (+0.26%)
    assert int8["size_mb"] < fp32["size_mb"] and int8["perplexity"] < 1.1 * fp32["perplexity"], (fp32, int8)


def _check_14(r: dict) -> None:
    """Chapter 14: guardrails refuse and resist injection, the classifier and recommenders beat their baselines, the
    LoRA runs learn (their TensorBoard losses fall), the template obeys the controls, the posters are labelled, int8
    shrinks the model."""
    _check_service_14(r)
    _check_sentiment_14(r)
    _check_recsys_14(r)
    _check_adcopy_14(r)
    _check_deploy_14(r)


def _check_template(r: dict) -> None:
    assert r["steps"] == 5
    # a linear model, 5 SGD steps: loss 5.60 -> 0.66 (0.12x; LEARN=False: unchanged). Demand a 3x drop.
    assert r["loss_trained"] < 0.3 * r["loss_untrained"], (r["loss_untrained"], r["loss_trained"])


CHECKS: dict[str, Callable[[dict], None]] = {
    "00_setup_and_tour": _check_00,
    "01_gan_math": _check_01,
    "02_first_image_gan": _check_02,
    "03_dcgan": _check_03,
    "04_attention_and_tiny_gpt": _check_04,
    "05_gpt2_finetuning": _check_05,
    "06_prompting_and_peft": _check_06,
    "07_diffusion_from_scratch": _check_07,
    "08_stable_diffusion_anatomy": _check_08,
    "09_finetuning_diffusion": _check_09,
    "10_evaluating_generated_content": _check_10,
    "11_provenance_watermarks_and_labels": _check_11,
    "12_robustness_safety_bias_privacy": _check_12,
    "13_audio_and_music_generation": _check_13,
    "14_capstone_apps": _check_14,
    "NN_chapter_template": _check_template,
}


class SmokeRuns(dict):
    """Smoke runs by notebook name, each executed on first use: `-k <name>` executes only the notebooks it keeps.
    ``parameters`` go to papermill (tests/test_checks_fail.py passes ``{"LEARN": False}``)."""

    def __init__(self, out: Path, parameters: dict | None = None):
        super().__init__()
        self.out, self.parameters, self.durations = out, parameters or {}, {}

    def __missing__(self, name: str):
        start = time.perf_counter()
        run = self[name] = execute_notebook(NOTEBOOKS / f"{name}.ipynb", self.out, profile="smoke",
                                            parameters=self.parameters)
        self.durations[name] = round(time.perf_counter() - start, 1)
        return run

    def write_durations(self, path: str, label: str) -> None:
        Path(path).parent.mkdir(exist_ok=True)
        Path(path).write_text(json.dumps(self.durations, indent=1))
        print(f"\n{label} seconds per notebook:", self.durations)


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """Execute each notebook once with the smoke profile (papermill), keyed by name, when a test first asks."""
    runs = SmokeRuns(tmp_path_factory.mktemp("executed"))
    yield runs
    runs.write_durations("build/notebook-smoke-seconds.json", "smoke run")


@pytest.mark.notebooks
def test_every_notebook_has_checks():
    assert sorted(CHECKS) == sorted(p.stem for p in ALL_NOTEBOOKS)


@pytest.mark.notebooks
@pytest.mark.parametrize("name", [p.stem for p in ALL_NOTEBOOKS])
def test_notebook_smoke_run(executed, name):
    run = executed[name]
    assert run.ok, f"{name} failed under papermill:\n{run.error}"
    results = run.results
    assert results.get("profile") == "smoke" and results.get("notebook") == name
    CHECKS[name](results)


@pytest.mark.notebooks
def test_course_index_links_notebooks_and_pictures(executed, tmp_path):
    runs = [executed[p.stem] for p in course_notebooks()]
    index = write_index(runs, runs[0].executed.parent, "smoke")
    page = index.read_text()
    for run in runs:
        assert run.name in page
    assert "<img src=" in page and "FAILED" not in page
