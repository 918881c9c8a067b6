"""Pretraining corpora as TFDS datasets, read back as random-access documents.

Two local TFDS builders, both written as ArrayRecord so `as_data_source` gives random access:

- `bert_jax_embedded`: prose that ships with every Python — standard-library docstrings (one
  document per module: its docstring + its functions' docstrings; one per class: its docstring
  + its methods' docstrings), read with `ast` (nothing is imported but `pydoc_data.topics`,
  which is a plain dict), de-duplicated, plus the language-reference topics of
  `pydoc_data.topics` (one document per topic).
- `bert_jax_text_files`: google-research/bert's format, one sentence per line and a blank line
  between documents, from the files named by `data.text_files`.

Every example is `{"id": str, "text": sentences joined by "\\n"}`. A document goes to the
`validation` split iff a stable hash of its id says so (~3%), so eval text is never trained on.

Cache safety: the text depends on the Python build (embedded) or on the files (text_files), so
the BuilderConfig name is a fingerprint of those inputs and of this file's code
(`py3_11_7_<hash>` / `files_<hash>`): another Python, other files or a changed extractor map
to another directory, never to a stale build. The builds also record `python_version`, the input fingerprint and a sha256 of each
split's text in `info.metadata`; `load_documents` checks them and refuses a mismatch.
"""
from __future__ import annotations

import ast
import collections.abc
import glob
import hashlib
import json
import os
import platform
import re
import sysconfig
from typing import Iterator, Sequence

import tensorflow_datasets as tfds
from bert_jax.data import DataError

SPLITS = ("train", "validation")
VALIDATION_PER_MILLE = 30  # ~3% of documents are held out.
# Builds are keyed on this file's code too: editing the extraction must not reuse old builds.
with open(__file__, "rb") as _f:
    _CODE_SHA256 = hashlib.sha256(_f.read()).hexdigest()
_SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages",
                        "__pycache__", "turtledemo", "ensurepip", "lib2to3"})
# A period after these words does not end a sentence.
_ABBREVIATIONS = frozenset({"e.g", "i.e", "eg", "ie", "vs", "cf", "mr", "mrs", "ms", "dr",
                            "no", "fig", "approx", "resp", "st", "al"})
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9])")
# Lines that start a unit of their own: bullets, doctest lines, "name (type): ..." fields.
_BULLET = re.compile(r"(?:[-*+]|\d+[.)]|>>>|\.\.\.|[\w.*]+(?: \([^)]*\))?:)\s")
_LETTER = re.compile(r"[A-Za-z]")
_EMPTY_ID = "<empty split>"


MAX_LINE_BYTES = 1_000_000  # A "sentence" line longer than this is unsplit text.


def is_validation(doc_id: str) -> bool:
    """Stable split rule: the same id always lands in the same split, on any machine."""
    h = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big")
    return h % 1000 < VALIDATION_PER_MILLE


def _split_unit(unit: str) -> list[str]:
    """Splits one whitespace-collapsed run of prose at sentence ends."""
    out, start = [], 0
    for m in _BOUNDARY.finditer(unit):
        word = unit[start:m.start()].rsplit(" ", 1)[-1].lstrip("\"'([")
        # "e.g. Foo", "Mr. X" and initials ("J. Smith") are not sentence ends; "of x. The" is.
        if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
            continue
        out.append(unit[start:m.end()].strip())
        start = m.end()
    out.append(unit[start:].strip())
    return out


def split_sentences(text: str) -> list[str]:
    """Deterministic regex sentence splitter for prose mixed with code.

    Blank lines end paragraphs; bullets, doctest lines (`>>>`, `...`), "name: ..." fields and
    lines after one that ends with ":" start a new unit (so "Args:" lists and code lines do
    not glue together).
    Units are whitespace-collapsed and cut after `.!?` (plus closing quotes/brackets) when
    whitespace and a capital/digit follow, except after abbreviations and initials; dots inside
    tokens (`os.path`, `3.11`) never split. Sentences with < 2 words or < 4 letters are junk.
    """
    sentences = []
    for block in re.split(r"\n\s*\n", text):
        units, cur = [], []
        for line in block.split("\n"):
            line = line.strip()
            if not line:
                continue
            if cur and (_BULLET.match(line) or cur[-1].endswith(":") or cur[-1].startswith(">>>")):
                units.append(" ".join(cur))
                cur = []
            cur.append(line)
        if cur:
            units.append(" ".join(cur))
        for unit in units:
            for s in _split_unit(" ".join(unit.split())):
                if len(s.split()) >= 2 and len(_LETTER.findall(s)) >= 4:
                    sentences.append(s)
    return sentences


def _python_version() -> str:
    return platform.python_version()


def _stdlib_files() -> list[tuple[str, str]]:
    """(relative path, absolute path) of the stdlib's .py files, in a fixed order."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in _SKIP_DIRS and not x.startswith("."))
        for n in sorted(names):
            if n.endswith(".py") and not n.startswith("test_"):
                path = os.path.join(d, n)
                files.append((os.path.relpath(path, root), path))
    return files


def _topics() -> dict[str, str]:
    from pydoc_data import topics  # A data-only module: importing it runs nothing.
    return topics.topics


def _embedded_fingerprint() -> str:
    """sha256 of everything the embedded text is made of (cheap: hashing, no parsing)."""
    h = hashlib.sha256(f"{_CODE_SHA256}|{_python_version()}".encode())
    for rel, path in _stdlib_files():
        h.update(rel.encode())
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    h.update(json.dumps(_topics(), sort_keys=True).encode())
    return h.hexdigest()


def _docstrings(body: list[ast.stmt]) -> list[str]:
    fns = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [d for n in body if isinstance(n, fns) and (d := ast.get_docstring(n))]


def embedded_documents() -> Iterator[tuple[str, list[str]]]:
    """Yields (id, sentences) of the embedded corpus, de-duplicated by text, in a fixed order."""
    seen_ids, seen_texts = set(), set()

    def emit(doc_id, parts):
        sentences = split_sentences("\n\n".join(p for p in parts if p))
        text = "\n".join(sentences)
        if sentences and doc_id not in seen_ids and text not in seen_texts:
            seen_ids.add(doc_id)
            seen_texts.add(text)
            return [(doc_id, sentences)]
        return []

    for rel, path in _stdlib_files():
        module = rel[:-3].replace(os.sep, ".").removesuffix(".__init__")
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, ValueError):  # A Python 2 leftover or a template: not prose.
            continue
        yield from emit(f"module:{module}", [ast.get_docstring(tree)] + _docstrings(tree.body))
        stack = [(module, tree.body)]
        while stack:  # Classes at any depth, each its own document.
            prefix, body = stack.pop(0)
            for node in body:
                if isinstance(node, ast.ClassDef):
                    name = f"{prefix}.{node.name}"
                    parts = [ast.get_docstring(node)] + _docstrings(node.body)
                    yield from emit(f"class:{name}", parts)
                    stack.append((name, node.body))
    for name, text in sorted(_topics().items()):
        yield from emit(f"topic:{name}", [text])


def expand_text_files(patterns: Sequence[str]) -> list[str]:
    """Absolute paths matched by `patterns` (globs sorted, duplicates dropped, order kept)."""
    if isinstance(patterns, str):
        patterns = [patterns]
    paths = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        matched = [p for p in matched if os.path.isfile(p)]
        if not matched:
            raise FileNotFoundError(
                f"data.text_files: {pattern!r} matches no file; fix the path or the glob.")
        paths += [os.path.abspath(p) for p in matched if os.path.abspath(p) not in paths]
    return paths


def _text_files_fingerprint(paths: Sequence[str]) -> str:
    # Path + size + mtime: cheap for large corpora; editing a file changes its mtime.
    stats = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    return hashlib.sha256(json.dumps([_CODE_SHA256, stats]).encode()).hexdigest()


def text_file_documents(path: str, name: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """Yields (id, sentences) per document of one google-format file.

    Ids are `name#index` (name defaults to the path). They decide the train/validation
    split, so the builder passes names relative to the corpus's common directory: moving
    the whole corpus elsewhere keeps the same split.

    Non-blank lines are sentences (whitespace collapsed); runs of blank lines separate documents.
    Bytes that are not UTF-8 raise a DataError naming the file and line: silently replacing
    them would train on mojibake. So does a line over MAX_LINE_BYTES: it is not a sentence, and
    BERT's pairing would keep a few hundred of its tokens and silently drop the rest.
    """
    doc, index = [], 0
    name = path if name is None else name
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(
                    f"{path}, line {lineno}: {len(raw):,} bytes in one line. In this format a "
                    f"line is one sentence (rows hold a few hundred tokens), so a line over "
                    f"{MAX_LINE_BYTES:,} bytes is text that was never split into sentences; "
                    "split it (one sentence per line, a blank line between documents) or "
                    "remove the file from data.text_files.")
            try:
                line = " ".join(raw.decode("utf-8").split())
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}, line {lineno}: not valid UTF-8 ({e.reason} at byte {e.start}). "
                    "Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or remove it "
                    "from data.text_files.") from None
            if line:
                doc.append(line)
            elif doc:
                yield f"{name}#{index}", doc
                doc, index = [], index + 1
    if doc:
        yield f"{name}#{index}", doc


class TextFilesConfig(tfds.core.BuilderConfig):
    """A BuilderConfig that also carries the paths the build reads (not part of the name)."""

    def __init__(self, *, paths: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.paths = tuple(paths)


class _CorpusBuilder(tfds.core.GeneratorBasedBuilder):
    """Shared `_info`/split logic; subclasses say where documents come from."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # Nothing is downloaded, so there is no checksums file to find next to the code; and
        # TFDS 4.9.10's lookup of it needs `importlib_resources`, which it only declares for
        # Python < 3.9.
        return None

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"id": tfds.features.Text(),
                                                 "text": tfds.features.Text()}),
            metadata=tfds.core.MetadataDict(),
        )

    def _documents(self) -> Iterator[tuple[str, list[str]]]:
        raise NotImplementedError

    def _metadata(self) -> dict:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # Everything is local.
        self.info.metadata.update(self._metadata())
        self.info.metadata["text_sha256"] = {}
        self.info.metadata["num_documents"] = {}
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        h, count = hashlib.sha256(), 0
        for doc_id, sentences in self._documents():
            if is_validation(doc_id) == (split == "validation"):
                text = "\n".join(sentences)
                h.update(f"{doc_id}\0{text}\0".encode())
                count += 1
                yield doc_id, {"id": doc_id, "text": text}
        if not count:  # TFDS refuses to write an empty split; readers skip this placeholder.
            yield _EMPTY_ID, {"id": _EMPTY_ID, "text": ""}
        # Runs when the writer exhausts the generator, before info (and metadata) is written.
        self.info.metadata["text_sha256"][split] = h.hexdigest()
        self.info.metadata["num_documents"][split] = count


class BertJaxEmbedded(_CorpusBuilder):
    """Standard-library docstrings + language-reference topics of the running Python."""

    name = "bert_jax_embedded"

    def _documents(self):
        # Both splits filter the same list: parse the stdlib once per build, not per split.
        if not hasattr(self, "_all_documents"):
            self._all_documents = list(embedded_documents())
        return self._all_documents

    def _metadata(self):
        return {"python_version": _python_version(), "fingerprint": _embedded_fingerprint()}


class BertJaxTextFiles(_CorpusBuilder):
    """google-research/bert text files: one sentence per line, blank line between documents."""

    name = "bert_jax_text_files"

    def _documents(self):
        paths = self.builder_config.paths
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
        for path in paths:
            yield from text_file_documents(path, os.path.relpath(path, root))

    def _metadata(self):
        return {"paths": list(self.builder_config.paths),
                "fingerprint": _text_files_fingerprint(self.builder_config.paths)}


def _embedded_config(fingerprint: str) -> tfds.core.BuilderConfig:
    name = "py" + _python_version().replace(".", "_") + "_" + fingerprint[:12]
    return tfds.core.BuilderConfig(name=name, description="stdlib docstrings + pydoc topics")


def _text_files_config(patterns: Sequence[str]) -> TextFilesConfig:
    paths = expand_text_files(patterns)
    return TextFilesConfig(name="files_" + _text_files_fingerprint(paths)[:16], paths=paths,
                           description=f"{len(paths)} text file(s)")


class Documents(collections.abc.Sequence):
    """Random-access documents of one split; `docs[i]` is a list of sentence strings.

    `identity` names the exact text (builder, config, version, split, text hash) so caches of
    anything derived from it can be keyed on it. `split_text` turns a stored `text` field into
    sentences: "\\n"-split for this project's corpora, `split_sentences` for foreign ones.
    """

    def __init__(self, source, identity: str, *, text_feature: str = "text",
                 indices: Sequence[int] | None = None, split_text=None):
        self._source = source
        self._indices = indices
        self._text_feature = text_feature
        self._split_text = split_text or (lambda t: t.split("\n"))
        self.identity = identity

    def __len__(self) -> int:
        return len(self._indices) if self._indices is not None else len(self._source)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        record = self._source[self._indices[i] if self._indices is not None else i]
        text = record[self._text_feature]
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        return [s for s in self._split_text(text) if s]


def _check_metadata(builder, want: dict) -> None:
    got = {k: builder.info.metadata.get(k) for k in want}
    if got != want:
        raise RuntimeError(
            f"{builder.data_dir} was built from other inputs ({got}, expected {want}); "
            "delete that directory to rebuild it.")


def load_documents(data_cfg, split: str) -> Documents:
    """Documents of `split` of `data_cfg.corpus`, preparing the TFDS dataset if needed.

    `data_cfg.corpus`: "embedded", "text_files" (reads `data_cfg.text_files`) or any TFDS name
    (e.g. "wikipedia/20230601.en", text in feature `data_cfg.text_feature`). Builds go to
    `data_cfg.tfds_data_dir` (None: TFDS's default). A foreign dataset without `split` gets it
    from its "train" split by the same stable hash rule applied to the record index.
    """
    data_dir = data_cfg.tfds_data_dir or None  # "" (the CLI-settable default) = TFDS's own
    if data_cfg.corpus in ("embedded", "text_files"):
        if data_cfg.corpus == "embedded":
            want = {"python_version": _python_version(), "fingerprint": _embedded_fingerprint()}
            config = _embedded_config(want["fingerprint"])
            name = BertJaxEmbedded.name
        else:
            if not data_cfg.text_files:
                raise DataError("data.corpus='text_files' needs data.text_files (paths or globs).")
            config = _text_files_config(list(data_cfg.text_files))
            name = BertJaxTextFiles.name
            want = {"fingerprint": _text_files_fingerprint(config.paths)}
        source = tfds.data_source(
            name, split=split, data_dir=data_dir,
            builder_kwargs={"config": config, "file_format": "array_record"})
        builder = tfds.builder(name, data_dir=data_dir, config=config,
                               file_format="array_record")
        _check_metadata(builder, want)
        meta = builder.info.metadata
        identity = f"{name}/{config.name}:{builder.version}/{split}@{meta['text_sha256'][split]}"
        if not meta["num_documents"][split]:
            source = []  # Only the placeholder of an empty split is stored.
        return Documents(source, identity)

    # A foreign TFDS dataset, prepared as ArrayRecord (random access) in `data_dir`.
    kwargs = {"data_dir": data_dir, "builder_kwargs": {"file_format": "array_record"}}
    builder = tfds.builder(data_cfg.corpus, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
    name, splits = builder.info.full_name, builder.info.splits
    doc_kwargs = dict(text_feature=data_cfg.text_feature, split_text=split_sentences)
    if split in SPLITS and "validation" not in splits:
        # No held-out split upstream (e.g. wikipedia): hash record indices of "train" instead.
        source = tfds.data_source(data_cfg.corpus, split="train", **kwargs)
        indices = [i for i in range(len(source))
                   if is_validation(f"{name}:{i}") == (split == "validation")]
        return Documents(source, f"{name}/{split}(hashed from train)", indices=indices,
                         **doc_kwargs)
    if split not in splits:
        raise DataError(f"{data_cfg.corpus} has no split {split!r}; it has {sorted(splits)}.")
    source = tfds.data_source(data_cfg.corpus, split=split, **kwargs)
    return Documents(source, f"{name}/{split}", **doc_kwargs)
