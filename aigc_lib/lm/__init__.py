"""Language models for chapters 04-06: a readable GPT-2, tokenizers, causal-LM data, training and decoding.

The teaching core is :mod:`~aigc_lib.lm.model` (the GPT a reader compares with nanoGPT's ``model.py``, and its
conversion to and from Hugging Face's ``GPT2LMHeadModel``); around it, one module per idea:

- :mod:`~aigc_lib.lm.tokenize`: a character tokenizer (04) and byte-level BPE trained offline (05);
- :mod:`~aigc_lib.lm.data`: packing a corpus into blocks, Q&A pairs with masked prompts, the padding collator;
- :mod:`~aigc_lib.lm.training`: the shifted causal-LM loss, the trainer step, AdamW groups, warm-up + cosine,
  perplexity, training memory;
- :mod:`~aigc_lib.lm.decoding`: greedy, beam, temperature, top-k, top-p and the repetition penalty;
- :mod:`~aigc_lib.lm.offline_base`: the small GPT-2 pretrained offline that stands in for ``gpt2``;
- :mod:`~aigc_lib.lm.shop_assistant`: notebook 05's fine-tuned shop assistant, built once and cached (10).

Every public name is re-exported here, so notebooks write ``lm.GPT``, ``lm.generate``. ``bleu``, ``rouge`` and
``distinct_n`` live in :mod:`aigc_lib.metrics.text`; they are re-exported here (the same functions) because
notebooks 04-06 call them as ``lm.bleu``.
"""
from aigc_lib.lm.adapters import (
    HOULSBY,
    PFEIFFER,
    AdaptedOutput,
    BottleneckAdapter,
    add_bottleneck_adapters,
    bottleneck_adapter_params,
)
from aigc_lib.lm.data import QA_TEMPLATE, CausalLMCollator, encode_corpus, encode_qa, pack_blocks, qa_batches
from aigc_lib.lm.decoding import DECODING, apply_repetition_penalty, complete, filter_logits, generate
from aigc_lib.lm.model import (
    GPT,
    GPT_SIZES,
    IGNORE_INDEX,
    MLP,
    Block,
    CausalSelfAttention,
    GPTConfig,
    KVCache,
    describe_lm,
    gpt_from_hf,
    hf_config,
    is_hf_model,
    unwrap_model,
)
from aigc_lib.lm.offline_base import (
    BASE_RECIPES,
    BaseRecipe,
    build_offline_base,
    load_base_lm,
    load_causal_lm,
)
from aigc_lib.lm.shop_assistant import (
    ASSISTANT_RECIPES,
    AssistantRecipe,
    assistant_split,
    build_shop_assistant,
    load_shop_assistant,
)
from aigc_lib.lm.tokenize import EOS, CharTokenizer, load_tokenizer, train_bpe_tokenizer
from aigc_lib.lm.training import (
    LMStep,
    causal_lm_loss,
    count_targets,
    lm_eval_fn,
    lm_logits,
    lm_loss,
    lm_optimizer,
    perplexity,
    training_memory,
    warmup_cosine,
)
from aigc_lib.metrics.text import bleu, distinct_n, rouge

__all__ = [
    "BASE_RECIPES", "DECODING", "EOS", "GPT", "GPT_SIZES", "IGNORE_INDEX", "MLP", "QA_TEMPLATE",
    "BaseRecipe", "Block", "CausalLMCollator", "CausalSelfAttention", "CharTokenizer", "GPTConfig", "KVCache",
    "LMStep", "apply_repetition_penalty", "bleu", "build_offline_base", "causal_lm_loss", "complete",
    "count_targets", "describe_lm", "distinct_n", "encode_corpus", "encode_qa", "filter_logits", "generate",
    "gpt_from_hf", "hf_config", "is_hf_model", "lm_eval_fn", "lm_logits", "lm_loss", "lm_optimizer",
    "load_base_lm", "load_causal_lm", "load_tokenizer", "pack_blocks", "perplexity", "qa_batches", "rouge",
    "train_bpe_tokenizer", "training_memory", "unwrap_model", "warmup_cosine",
    # bottleneck adapters (notebook 06)
    "HOULSBY", "PFEIFFER", "AdaptedOutput", "BottleneckAdapter", "add_bottleneck_adapters",
    "bottleneck_adapter_params",
    # the shop assistant of notebook 05, built and cached for later chapters (10)
    "ASSISTANT_RECIPES", "AssistantRecipe", "assistant_split", "build_shop_assistant", "load_shop_assistant",
]
