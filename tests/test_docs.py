"""The documentation against the repository: README.md and docs/*.md name only paths that exist
and `make` targets the Makefile has; the README stays short and links every page of docs/.

What counts as a path: a word of an inline code span (`...`) or a link target that contains a
`/` or ends in one of PATH_SUFFIXES. Inline code spans are read, fenced blocks are not: those hold
commands, program output and layouts relative to a data folder. `make <target>` is read in both.
Pure text, no marker: well under a second.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"
README_MAX_LINES = 250
PATH_SUFFIXES = (".py", ".yaml", ".smk", ".md", ".json", ".csv")

# Where a path outside the repository starts, and why the docs name it.
OUTSIDE_PREFIXES = {
    "results/": "a run's outputs: made by the run, only results/README.md is in git",
    ".venv/": "the environment that make install builds",
    ".snakemake/": "Snakemake's working folder (a Slurm job's log lands in it)",
    "~": "the user's home: the Kaggle token, the libraries' caches",
    "/": "an absolute path on the user's machine",
    "$": "a folder an environment variable names ($TORCH_HOME, $HF_HOME, $TMPDIR)",
}
# Single paths that are not in this repository, each with where it is instead.
NOT_HERE = {
    "src/nn/unet.py": "in EKami's carvana-challenge repository: the UNet1024 reference",
    "checkpoints/last.ckpt": "in a training job's folder, results/models/<model>/fold<k>/",
    "labels/fold<k>/": "in a pseudo-labelling round's folder, results/pseudo/round<r>/",
    "shard_<i>-of-<n>/": "in a fold's labels, results/pseudo/round<r>/labels/fold<k>/",
}
# A bare file name (no folder) is a module named by its file (`metrics.py`) or a file the pipeline
# reads or writes (`thresholds.json`, `train_masks.csv`): it must be the name of a repository file or
# appear in the code that reads or writes it.
CODE_DIRS = ("src", "workflow")

CODE_SPAN = re.compile(r"`((?:[^`\n]|\n(?![ \t]*\n))+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MAKE = re.compile(r"\bmake\s+([a-z][\w-]*)")
PATH_WORD = re.compile(r"[\w.\-/<>*~$]+")


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS_DIR.glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def split_fences(text: str) -> tuple[str, str]:
    """The text outside fenced blocks and the text inside them, each with the other's lines blank,
    so that an offset in either gives the line number in the file."""
    outside, inside, fenced = [], [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            outside.append("")
            inside.append("")
        elif fenced:
            outside.append("")
            inside.append(line)
        else:
            outside.append(line)
            inside.append("")
    return "\n".join(outside), "\n".join(inside)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def path_words(span: str) -> list[str]:
    """The words of a code span that look like paths."""
    words = []
    for raw in span.split():
        word = raw.strip("'\"()[],;:")
        if "://" in word or not PATH_WORD.fullmatch(word):
            continue
        if "/" in word or word.endswith(PATH_SUFFIXES):
            words.append(word)
    return words


def code_text() -> str:
    parts = []
    for directory in CODE_DIRS:
        for suffix in ("*.py", "*.smk", "*.yaml"):
            parts += [p.read_text() for p in sorted((ROOT / directory).rglob(suffix))]
    return "\n".join(parts)


def file_names() -> set[str]:
    """The names of the repository's files, outside the folders that runs and tools fill."""
    skip = {".git", ".venv", "results", ".snakemake", "mutants", "__pycache__"}
    names: set[str] = set()
    for _folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in skip]
        names.update(files)
    return names


def missing_path(word: str, names: set[str], code: str) -> bool:
    """Whether a path a doc names in code is not in the repository (relative to its root)."""
    if word.startswith(tuple(OUTSIDE_PREFIXES)) or word in NOT_HERE:
        return False
    if "/" not in word.rstrip("/"):
        bare = word.rstrip("/")
        in_code = re.search(rf"(?<![\w.]){re.escape(bare)}(?![\w.])", code) is not None
        return bare not in names and not in_code and not (ROOT / bare).exists()
    if any(c in word for c in "<*"):
        pattern = re.sub(r"<[^>]*>", "*", word.rstrip("/"))
        return not any(ROOT.glob(pattern))
    return not (ROOT / word).exists()


def anchors(markdown: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces as hyphens."""
    fenced, slugs = False, set()
    for line in markdown.read_text().split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


def link_problem(doc: Path, target: str) -> str | None:
    if re.match(r"[a-z]+:", target):
        return None
    path_part, _, anchor = target.partition("#")
    linked = (doc.parent / path_part).resolve() if path_part else doc
    if not linked.exists():
        return f"links to {path_part}, which is not in the repository"
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        return f"links to #{anchor}, which is no heading of {rel(linked)}"
    return None


def test_every_path_the_docs_name_exists() -> None:
    names, code = file_names(), code_text()
    problems = []
    for doc in doc_files():
        outside, _ = split_fences(doc.read_text())
        for span in CODE_SPAN.finditer(outside):
            for word in path_words(span.group(1)):
                if missing_path(word, names, code):
                    problems.append(
                        f"{rel(doc)}:{line_of(outside, span.start())}: `{word}` is not in the repository"
                    )
        for link in LINK.finditer(outside):
            problem = link_problem(doc, link.group(1))
            if problem:
                problems.append(f"{rel(doc)}:{line_of(outside, link.start())}: {problem}")
    assert not problems, "\n".join(problems)


def test_every_make_target_the_docs_name_is_in_the_makefile() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert {"run", "test"} <= targets, f"the Makefile's targets as parsed: {sorted(targets)}"
    problems = []
    for doc in doc_files():
        outside, inside = split_fences(doc.read_text())
        code = [(line_of(outside, m.start()), m.group(1)) for m in CODE_SPAN.finditer(outside)]
        code += [(line_of(inside, m.start()), m.group(0)) for m in re.finditer(r".+", inside)]
        for line, text in code:
            for target in MAKE.findall(text):
                if target not in targets:
                    problems.append(
                        f"{rel(doc)}:{line}: `make {target}` is no target of the Makefile "
                        f"(its targets: {', '.join(sorted(targets))})"
                    )
    assert not problems, "\n".join(problems)


def test_the_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md: {lines} lines, at most {README_MAX_LINES}: move detail to a page of docs/"
    )


def test_the_readme_links_every_page_of_docs() -> None:
    outside, _ = split_fences(README.read_text())
    linked = {(ROOT / m.group(1).partition("#")[0]).resolve() for m in LINK.finditer(outside)}
    pages = sorted(DOCS_DIR.glob("*.md"))
    assert len(pages) >= 2, f"docs/ holds {len(pages)} pages: the glob found too few to check"
    unlinked = [rel(page) for page in pages if page.resolve() not in linked]
    assert not unlinked, f"README.md does not link {', '.join(unlinked)}"


def test_the_code_layout_lists_every_module_and_rule_file() -> None:
    """docs/development.md's layout has a row for each module of src/ and benchmarks/ and each
    rule file: a module added without its row fails here, so the map cannot fall behind."""
    layout = (DOCS_DIR / "development.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \|", layout, re.MULTILINE))
    files = [
        *ROOT.glob("src/carvana/**/*.py"),
        *ROOT.glob("benchmarks/**/*.py"),
        *ROOT.glob("workflow/rules/*.smk"),
    ]
    expected = {rel(path) for path in files if path.name != "__init__.py"}
    assert len(expected) > 60, f"found {len(expected)} modules and rule files: the globs missed some"
    unlisted = sorted(expected - listed)
    assert not unlisted, f"docs/development.md's layout has no row for: {', '.join(unlisted)}"
