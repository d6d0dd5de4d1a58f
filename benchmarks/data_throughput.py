"""Data pipeline throughput on a real corpus: curation documents/s, tokenization + packing MB/s
against Hugging Face ``datasets.map``, and peak memory at two corpus sizes.

    python benchmarks/data_throughput.py --filter-docs 2000 --repeats 3 --threads 2

The corpus is the running interpreter's standard library, one document per top-level function or
class (``PythonStdlibConfig(split="function")``), written to a jsonl file ``--scale`` times with
distinct ids, so every machine measures the same text. Everything is written to a temporary
directory, ``TRANSFERLAB_CACHE`` included.

1. Curation: the first ``--filter-docs`` documents through the four heuristic filters
   (``gopher_quality``, ``gopher_repetition``, ``c4_quality``, ``fineweb_quality``) with dedup
   off, chained and each alone, then through dedup alone (exact + MinHash). A warm-up run on a few documents first, so
   loading datatrove and spacy is not timed.
2. Tokenization + packing of the jsonl corpus with one byte-level BPE tokenizer (vocab 4096,
   trained on the corpus), each document ``[bos] + ids + [eos]``:
     ours      ``JsonlConfig`` streams the documents, ``encode_batch`` encodes them a chunk at a
               time, ``write_tokenized`` writes the datatrove shard;
     datasets  ``load_dataset("json")``, ``map(batched=True)`` calling the same ``encode_batch``
               (so both run the same Rust tokenizer with the same thread pool), then the ids
               written to one flat uint16 file.
   MB/s counts the corpus's UTF-8 text bytes. Both token streams must have the same checksum.
   Each side runs ``--repeats`` times, alternating, with a fresh datasets cache each time; the
   best repeat counts. The tokenizer's Rust pool is capped at ``--threads`` (RAYON_NUM_THREADS).
3. Peak memory: our tokenization + packing at 1x and ``--big`` x the corpus, each in a fresh
   subprocess that reports its peak resident set (VmHWM): streamed, it should not grow with size.

Prints:
    filters docs_per_s=X n_docs=N kept=K stage_docs_in=...   (the four chained)
    filter_<name> docs_per_s=... (each filter alone on all N documents)
    dedup docs_per_s=Y n_docs=N kept=K
    tokenize_pack ours_MB_per_s=A datasets_MB_per_s=B ratio=R corpus_MB=C checksum_match=True
    peak_rss size=1x MB=M1 size=4x MB=M2 ratio=Q imports_MB=I above_imports_1x_MB=.. ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

FILTERS = ["gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality"]
ENCODE_CHUNK = 2048  # documents per encode_batch call, as data.prepare encodes
MAP_BATCH = 1000  # datasets.map's default batch size
VOCAB_SIZE = 4096


def main() -> None:
    args = _parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its pool
    if args.child_pack:
        _child_pack(Path(args.child_pack[0]), Path(args.child_pack[1]), Path(args.child_pack[2]))
        return
    with tempfile.TemporaryDirectory(prefix="data_throughput_") as tmp:
        root = Path(tmp)
        os.environ["TRANSFERLAB_CACHE"] = str(root / "cache")
        print(f"# load average {os.getloadavg()[0]:.2f}, threads {args.threads}", flush=True)
        docs = _stdlib_documents()
        _bench_curation(docs[: args.filter_docs], root)
        small, big = root / "corpus_1x.jsonl", root / f"corpus_{args.big}x.jsonl"
        _write_corpus(docs, small, 1)
        _write_corpus(docs, big, args.big)
        tokenizer_path = root / "tokenizer.json"
        _train_tokenizer(docs, tokenizer_path)
        _bench_tokenize(big, tokenizer_path, root, args.repeats)
        _bench_memory(small, big, tokenizer_path, root, args)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filter-docs", type=int, default=2000)
    parser.add_argument("--big", type=int, default=4, help="corpus multiple of the larger size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    # Internal: run one packing job and print its peak memory (used for the memory measurement).
    parser.add_argument("--child-pack", nargs=3, metavar=("CORPUS", "TOKENIZER", "OUT"))
    return parser.parse_args()


def _stdlib_documents() -> list:
    from transferlab.data.sources import PythonStdlibConfig, SkippedDocumentsWarning

    with warnings.catch_warnings():  # a few empty __init__.py files: expected, not news
        warnings.simplefilter("ignore", SkippedDocumentsWarning)
        return list(PythonStdlibConfig(split="function").iter_documents())


def _write_corpus(docs: list, path: Path, scale: int) -> None:
    """``scale`` copies of the documents, each copy's ids prefixed with its number."""
    with path.open("w", encoding="utf-8") as out:
        for copy in range(scale):
            for doc in docs:
                out.write(json.dumps({"id": f"{copy}/{doc.id}", "text": doc.text}) + "\n")


def _timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


# --- 1. curation ---------------------------------------------------------------------------


def _bench_curation(docs: list, root: Path) -> None:
    from transferlab.curation import CurationConfig, DedupConfig

    no_dedup = DedupConfig(exact=False, minhash=None)
    runs = {"filters": CurationConfig(filters=FILTERS, dedup=no_dedup)}
    # Chained, each filter sees only what the previous kept (on code, gopher_quality keeps
    # almost nothing), so each filter is also timed alone on all the documents.
    runs |= {f"filter_{name}": CurationConfig(filters=[name], dedup=no_dedup) for name in FILTERS}
    runs["dedup"] = CurationConfig(filters=[], dedup=DedupConfig())
    scores = root / "scores"
    runs["filters"].run(docs[:20], root / "warmup", scores)  # loads datatrove, spacy: not timed
    for name, cfg in runs.items():
        seconds, result = _timed(cfg.run, docs, root / f"curated_{name}", scores)
        report = result.report
        stages = ",".join(f"{stage.name}:{stage.docs_in}" for stage in report.stages)
        print(
            f"{name} docs_per_s={len(docs) / seconds:.1f} n_docs={len(docs)} "
            f"kept={report.output.documents} stage_docs_in={stages}",
            flush=True,
        )


# --- 2. tokenization + packing -------------------------------------------------------------


def _train_tokenizer(docs: list, path: Path) -> None:
    from transferlab.config.schemas import TokenizerConfig
    from transferlab.data.tokenizer import train_tokenizer

    cfg = TokenizerConfig(kind="bpe", vocab_size=VOCAB_SIZE)
    train_tokenizer(cfg, (d.text for d in docs)).save(path)


def _bench_tokenize(corpus: Path, tokenizer_path: Path, root: Path, repeats: int) -> None:
    text_mb = _corpus_text_bytes(corpus) / 1e6
    best = {"ours": float("inf"), "datasets": float("inf")}
    digests = {}
    for rep in range(repeats):  # alternate, so drifting machine load hits both alike
        out = root / f"pack_{rep}"
        for side, fn in (("ours", _pack_ours), ("datasets", _pack_datasets)):
            seconds, token_file = _timed(fn, corpus, tokenizer_path, out / side)
            best[side] = min(best[side], seconds)
            digests[side] = _sha256(token_file)
    if digests["ours"] != digests["datasets"]:
        raise AssertionError(f"token streams differ: {digests}")
    ours, theirs = text_mb / best["ours"], text_mb / best["datasets"]
    print(
        f"tokenize_pack ours_MB_per_s={ours:.2f} datasets_MB_per_s={theirs:.2f} "
        f"ratio={ours / theirs:.2f} corpus_MB={text_mb:.1f} checksum_match=True"
    )


def _corpus_text_bytes(corpus: Path) -> int:
    with corpus.open(encoding="utf-8") as lines:
        return sum(len(json.loads(line)["text"].encode("utf-8")) for line in lines)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _pack_ours(corpus: Path, tokenizer_path: Path, out: Path) -> Path:
    from transferlab.data.shards import write_tokenized
    from transferlab.data.sources import JsonlConfig
    from transferlab.data.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.from_file(tokenizer_path)
    texts = (doc.text for doc in JsonlConfig(path=str(corpus)).iter_documents())
    docs = _with_specials(tokenizer, _chunks(texts, ENCODE_CHUNK))
    (path,) = write_tokenized(docs, out, tokenizer.vocab_size)
    return path


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _with_specials(tokenizer, chunks: Iterable[list[str]]) -> Iterator[list[int]]:
    bos, eos = tokenizer.special.bos, tokenizer.special.eos
    for chunk in chunks:
        for ids in tokenizer.encode_batch(chunk):
            yield [bos, *ids, eos]


def _pack_datasets(corpus: Path, tokenizer_path: Path, out: Path) -> Path:
    """The usual Hugging Face recipe: load, batched map, then write the ids out."""
    import datasets
    import numpy as np

    from transferlab.data.tokenizer import TextTokenizer

    datasets.disable_progress_bars()
    tokenizer = TextTokenizer.from_file(tokenizer_path)
    bos, eos = tokenizer.special.bos, tokenizer.special.eos

    def encode(batch: dict) -> dict:
        return {"ids": [[bos, *ids, eos] for ids in tokenizer.encode_batch(batch["text"])]}

    cache = out / "hf_cache"  # fresh per run: a cache hit would skip the work being measured
    data = datasets.load_dataset("json", data_files=str(corpus), split="train", cache_dir=cache)
    data = data.map(encode, batched=True, batch_size=MAP_BATCH, remove_columns=data.column_names)
    path = out / "tokens.bin"
    with path.open("wb") as handle:
        for batch in data.with_format("arrow").iter(batch_size=MAP_BATCH):
            flat = batch.column("ids").combine_chunks().flatten().to_numpy()
            handle.write(flat.astype(np.uint16).tobytes())
    return path


# --- 3. peak memory --------------------------------------------------------------------------


def _bench_memory(
    small: Path, big: Path, tokenizer_path: Path, root: Path, args: argparse.Namespace
) -> None:
    peaks, imports = [], []
    for corpus in (small, big):
        command = [sys.executable, __file__, "--threads", str(args.threads), "--child-pack"]
        command += [str(corpus), str(tokenizer_path), str(root / f"mem_{corpus.stem}")]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        fields = dict(item.split("=") for item in result.stdout.split())
        peaks.append(float(fields["peak_rss_MB"]))
        imports.append(float(fields["imports_MB"]))
    print(
        f"peak_rss size=1x MB={peaks[0]:.1f} size={args.big}x MB={peaks[1]:.1f} "
        f"ratio={peaks[1] / peaks[0]:.2f} imports_MB={max(imports):.1f} "
        f"above_imports_1x_MB={peaks[0] - imports[0]:.1f} "
        f"above_imports_{args.big}x_MB={peaks[1] - imports[1]:.1f}"
    )


def _child_pack(corpus: Path, tokenizer_path: Path, out: Path) -> None:
    # The peak after the imports alone (torch comes in with transferlab) is the floor; what
    # packing adds on top of it is what could grow with the corpus.
    from transferlab.data import shards, sources, tokenizer  # noqa: F401

    imports = _peak_rss_mb()
    _pack_ours(corpus, tokenizer_path, out)
    print(f"imports_MB={imports:.1f} peak_rss_MB={_peak_rss_mb():.1f}")


def _peak_rss_mb() -> float:
    """VmHWM of this process (its peak resident set), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("/proc/self/status has no VmHWM line; this needs Linux")


if __name__ == "__main__":
    main()
