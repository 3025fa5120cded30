"""A small CLIP-format BPE vocabulary (for `mini` and for random models in tests).

Real CLIP's 49,408-token vocabulary would dwarf a model of a few million parameters, so
`mini` uses its own: every byte (as CLIP's byte-to-unicode table spells it, with and without
the end-of-word mark) plus merges that spell each word of the synthetic world in whole.
The files (`vocab.json`, `merges.txt`) are CLIP's, so transformers' `CLIPTokenizer` reads
them and `mini` takes exactly the code path of the real checkpoints. Unknown words fall
back to single characters, never to an unknown token.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import CLIPTokenizer

START, END = "<|startoftext|>", "<|endoftext|>"


def byte_alphabet() -> list[str]:
    """CLIP's printable stand-ins for the 256 byte values, in CLIP's order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encode one word as CLIP's tokenizer does: merge the best-ranked adjacent pair
    (every occurrence of it) until no pair of `ranks` is left."""
    while len(symbols) > 1:
        pairs = {(a, b) for a, b in zip(symbols, symbols[1:], strict=False)}
        best = min(pairs, key=lambda pair: ranks.get(pair, len(ranks)))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def build_vocabulary(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Token -> id table and ordered merges under which every lower-cased word of `words` is
    one token. Each word gets merges that join, left to right, the pieces the merges of the
    earlier words leave it in; a word they cannot make whole is refused."""
    alphabet = byte_alphabet()
    ranks: dict[tuple[str, str], int] = {}
    vocabulary = sorted({w.lower() for w in words if w.strip()})
    for word in vocabulary:
        if any(character not in alphabet for character in word):
            raise ValueError(f"word {word!r} has characters outside CLIP's byte alphabet")
        symbols = apply_merges(_characters(word), ranks)
        while len(symbols) > 1:
            ranks.setdefault((symbols[0], symbols[1]), len(ranks))
            symbols = [symbols[0] + symbols[1], *symbols[2:]]
    for word in vocabulary:
        if len(apply_merges(_characters(word), ranks)) != 1:
            raise ValueError(f"word {word!r} does not encode to one token with these merges")
    merges = list(ranks)
    tokens = [*alphabet, *(symbol + "</w>" for symbol in alphabet), *(a + b for a, b in merges)]
    tokens = list(dict.fromkeys(tokens)) + [START, END]
    return {token: index for index, token in enumerate(tokens)}, merges


def _characters(word: str) -> list[str]:
    """A word as BPE starts it: its characters, the last one marked as the word's end."""
    return [*word[:-1], word[-1] + "</w>"]


def write_tokenizer(directory: str | Path, words: list[str]) -> CLIPTokenizer:
    """Write a CLIP tokenizer for `words` into `directory` and return it loaded."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary, merges = build_vocabulary(words)
    vocab_file, merges_file = directory / "vocab.json", directory / "merges.txt"
    vocab_file.write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text(
        "#version: mini\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    CLIPTokenizer(vocab=vocabulary, merges=merges, pad_token=END).save_pretrained(directory)
    return CLIPTokenizer.from_pretrained(directory)
