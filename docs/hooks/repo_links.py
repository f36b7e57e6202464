"""MkDocs hook: a docs page may link to a file of the repository outside
docs/, as ``[include/clstm.h](../include/clstm.h)``. Such a link works on
GitHub as it is; for the site, the file is copied into it under ``repo/``
and the link pointed there, so that it works in the site too and
``mkdocs build --strict`` still reports a link to a file that does not
exist. Markdown files outside docs/ are not copied (they would become
pages): include them with pymdownx.snippets instead."""
import os
import posixpath
import re

from mkdocs.structure.files import File

# [text](target) and ![alt](target), with an optional #anchor
_LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?\))")
_PREFIX = "repo"


def _root(config):
    """The repository's root: the folder of mkdocs.yml."""
    return os.path.dirname(os.path.abspath(config["config_file_path"]))


def _repo_file(src_uri, target, config):
    """The repository path (posix) that `target`, linked from the page
    `src_uri`, names outside docs/, or None."""
    if "://" in target or target.startswith(("/", "mailto:")) or target.endswith(".md"):
        return None
    docs = os.path.abspath(config["docs_dir"])
    root = _root(config)
    path = os.path.normpath(os.path.join(docs, os.path.dirname(src_uri), target))
    if path.startswith(docs + os.sep) or not path.startswith(root + os.sep):
        return None
    return os.path.relpath(path, root).replace(os.sep, "/")


def on_files(files, config):
    """Add every repository file that a page links to, under repo/."""
    root, added = _root(config), set()
    for page in list(files.documentation_pages()):
        with open(page.abs_src_path, encoding="utf-8") as f:
            text = f.read()
        for m in _LINK.finditer(text):
            rel = _repo_file(page.src_uri, m.group(2), config)
            if rel is None or rel in added or not os.path.isfile(os.path.join(root, rel)):
                continue  # a missing file stays a broken link, which --strict reports
            added.add(rel)
            files.append(File.generated(config, posixpath.join(_PREFIX, rel),
                                        abs_src_path=os.path.join(root, rel)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Point the page's links to repository files at their copies."""
    src = page.file.src_uri

    def point(m):
        rel = _repo_file(src, m.group(2), config)
        if rel is None or not os.path.isfile(os.path.join(_root(config), rel)):
            return m.group(0)  # a missing file: --strict names the link as written
        here = posixpath.dirname(src) or "."
        return m.group(1) + posixpath.relpath(posixpath.join(_PREFIX, rel), here) + m.group(3)

    return _LINK.sub(point, markdown)
