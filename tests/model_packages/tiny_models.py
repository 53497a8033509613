"""Tiny, randomly initialised models built from configs: real code paths, no hub download.

Seed 3 of the causal LM continues different prompts differently (so batching bugs show).
"""
from __future__ import annotations

from pathlib import Path

WORDS = ["hello", "world", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {token: index for index, token in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_causal_lm(seed: int = 3):
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(seed)
    config = OPTConfig(
        vocab_size=len(WORDS) + 3, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
        max_position_embeddings=64, word_embed_proj_dim=16, pad_token_id=0, eos_token_id=1, bos_token_id=1,
    )
    return OPTForCausalLM(config).eval()


def save_tiny_causal_lm(directory: Path) -> Path:
    tiny_causal_lm().save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory
