import dataclasses
import functools
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from sequence_models.tasks import text
from sequence_models.tasks.text import (
    ChecksumError,
    StreamBatches,
    WindowSampler,
    batchify,
    download,
    load_corpus,
    windows,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED} (CI places shared/ beside the checkout)"
)


# ----------------------------------------------------------------------------------- shared corpora


@needs_shared
def test_tinyshakespeare_counts():
    c = load_corpus("tinyshakespeare", data_dir=SHARED / "tinyshakespeare")
    assert c.level == "char" and c.vocab_size == 65
    assert c.splits["train"].numel() + c.splits["valid"].numel() == 1_115_394
    assert c.splits["train"].numel() == 1_003_854 and c.splits["valid"].numel() == 111_540
    assert "test" not in c.splits
    assert c.decode(c.splits["train"][:14]) == "First Citizen:"


@needs_shared
def test_ptb_counts():
    c = load_corpus("ptb", data_dir=SHARED / "ptb")
    counts = {k: v.numel() for k, v in c.splits.items()}
    assert counts == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert c.vocab_size == 10_000
    eos = c.vocab.index("<eos>")
    n_lines = sum(1 for _ in open(SHARED / "ptb" / "ptb.valid.txt"))
    assert int((c.splits["valid"] == eos).sum()) == n_lines


@needs_shared
def test_wikitext2_counts():
    c = load_corpus("wikitext2", data_dir=SHARED / "wikitext-2")
    counts = {k: v.numel() for k, v in c.splits.items()}
    assert counts == {"train": 2_088_628, "valid": 217_646, "test": 245_569}
    assert c.vocab_size == 33_278


def test_local_file_with_wrong_checksum_is_refused(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.{split}.txt").write_text("a b c\n")
    with pytest.raises(ChecksumError, match="sha256"):
        load_corpus("ptb", data_dir=tmp_path)
    c = load_corpus("ptb", data_dir=tmp_path, verify=False)
    assert c.splits["train"].tolist() == [0, 1, 2, 3]  # a b c <eos>


# ---------------------------------------------------------------------------------------- download


@pytest.fixture
def http_root(tmp_path):
    """A loopback-only HTTP server over a temporary folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_verifies_and_renames(http_root, tmp_path):
    root, base = http_root
    payload = b"hello corpus\n" * 1000
    (root / "small.txt").write_bytes(payload)
    dest = tmp_path / "cache" / "small.txt"
    digest = hashlib.sha256(payload).hexdigest()
    assert download(f"{base}/small.txt", dest, f"sha256:{digest}", timeout=10) == dest
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["small.txt"]


def test_download_checksum_mismatch_is_clear_and_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    (root / "small.txt").write_bytes(b"tampered\n")
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        download(f"{base}/small.txt", cache / "small.txt", f"sha256:{wrong}", timeout=10)
    message = str(e.value)
    assert wrong in message and hashlib.sha256(b"tampered\n").hexdigest() in message
    assert "--data-dir" in message  # says what to do
    assert list(cache.iterdir()) == []  # neither the file nor a partial one


def test_download_falls_back_to_mirror_and_reports_failures(http_root, tmp_path):
    root, base = http_root
    payload = b"mirror\n"
    (root / "m.txt").write_bytes(payload)
    dest = tmp_path / "c" / "m.txt"
    download([f"{base}/missing.txt", f"{base}/m.txt"], dest, "md5:" + hashlib.md5(payload).hexdigest(), timeout=10)
    assert dest.read_bytes() == payload
    with pytest.raises(RuntimeError, match="missing.txt"):
        download([f"{base}/missing.txt"], tmp_path / "d" / "x.txt", "sha256:" + "0" * 64, timeout=10)
    assert list((tmp_path / "d").iterdir()) == []


def test_wikitext103_loader_on_a_tiny_sample(http_root, tmp_path, monkeypatch):
    root, base = http_root
    lines = {
        "train": " = Title = \n\n the cat sat on the mat . \n the dog <unk> . \n",
        "valid": " the cat sat . \n",
        "test": " a zebra sat . \n",  # unseen words map to <unk>
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split, body in lines.items():
            z.writestr(f"wikitext-103/wiki.{split}.tokens", body)
    (root / "wikitext-103-v1.zip").write_bytes(buf.getvalue())
    spec = text.CORPORA["wikitext103"]
    archive = dataclasses.replace(
        spec.archive, urls=(f"{base}/wikitext-103-v1.zip",), checksum="md5:" + hashlib.md5(buf.getvalue()).hexdigest()
    )
    monkeypatch.setitem(text.CORPORA, "wikitext103", dataclasses.replace(spec, archive=archive))

    c = load_corpus("wikitext103", cache_dir=tmp_path / "cache")
    # one <eos> per line, blank lines included, as PyTorch's word_language_model counts
    assert c.splits["train"].numel() == (3 + 1) + 1 + (7 + 1) + (4 + 1)
    assert c.decode(c.splits["valid"]) == "the cat sat . <eos>"
    assert c.decode(c.splits["test"]) == "<unk> <unk> sat . <eos>"
    assert (tmp_path / "cache" / "wikitext103" / "wiki.train.tokens").is_file()
    # a second load uses the cache, with the server's copy gone
    (root / "wikitext-103-v1.zip").unlink()
    again = load_corpus("wikitext103", cache_dir=tmp_path / "cache", allow_download=False)
    assert torch.equal(again.splits["train"], c.splits["train"])


# ---------------------------------------------------------------------------------------- batching


def test_stream_batches_are_contiguous_per_row():
    ids = torch.arange(103)
    batches = StreamBatches(ids, batch_size=4, seq_len=7)
    rows = batchify(ids, 4)
    assert rows.shape == (4, 25) and torch.equal(rows[1], torch.arange(25, 50))
    xs, ys = zip(*batches)
    assert len(batches) == len(xs) == 4  # 24 inputs per row: 7 + 7 + 7 + 3
    assert [x.shape[1] for x in xs] == [7, 7, 7, 3]
    x, y = torch.cat(xs, 1), torch.cat(ys, 1)
    assert torch.equal(x, rows[:, :-1]) and torch.equal(y, rows[:, 1:])


def test_window_sampler_and_eval_windows():
    ids = torch.arange(1000)
    sampler = WindowSampler(ids, batch_size=16, seq_len=32, seed=1)
    x, y = sampler.sample()
    assert x.shape == (16, 32) and torch.equal(y, x + 1)  # windows of consecutive tokens
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(16, 31, dtype=torch.long))
    x2, _ = WindowSampler(ids, batch_size=16, seq_len=32, seed=1).sample()
    assert torch.equal(x, x2)
    batches = list(windows(ids, batch_size=10, seq_len=32))
    covered = torch.cat([b[0] for b in batches]).flatten()
    assert torch.equal(covered, torch.arange(31 * 32))
    assert all(torch.equal(by, bx + 1) for bx, by in batches)


def test_missing_files_and_unknown_corpus_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_corpus("wikitext2", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="downloading is off"):
        load_corpus("ptb", cache_dir=tmp_path, allow_download=False)
    with pytest.raises(ValueError, match="ptb"):
        load_corpus("penn")
