"""Every ``freqdense`` command line shown in README.md and docs/**/*.md is accepted by the real command-line parser.

The test reads the shell lines of fenced code blocks (```` ``` ````, ```` ```bash ````, ```` ```sh ````,
```` ```console ````, ...) that start with ``freqdense`` (also after a ``$`` prompt, after ``VAR=value`` assignments,
after ``do``, and as ``python -m freqdense`` / ``torchrun ... -m freqdense``). ``# comments`` are dropped and lines
ending in ``\\`` are joined. Each line becomes one test, ``<file>:<line>``, run in-process against
:func:`freqdense.cli.main.build_parser` and :func:`freqdense.cli.main.main`.

Why two checks: appending ``--help`` alone is not enough. argparse acts on ``--help`` as soon as it parses it and
exits 0, and a sub-parser collects unknown options instead of failing, so ``freqdense train CFG --bogus --help``
exits 0 too (``test_help_alone_misses_unknown_options`` shows it). So each line is

1. parsed without ``--help`` by ``parse_known_args``: argparse errors (unknown sub-command, missing required
   argument, bad value or choice) fail, and so does every left-over argument except the ``section.key=value``
   overrides that ``main`` accepts after options;
2. run as ``main(argv + ["--help"])``, which must exit with code 0.

Usage synopses (lines with ``[optional]`` parts, ``A|B`` alternatives or ``...``) cannot be parsed as they are; for
them step 1 checks the sub-command path and that every ``--option`` they name exists for that sub-command.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from freqdense.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

#: Info strings of fenced blocks that hold shell lines ("" = a bare ```).
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}

_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PREFIX_WORDS = {"do", "then", "else", "time", "exec"}


@dataclass(frozen=True)
class DocCommand:
    """One ``freqdense`` invocation found in a document."""

    path: str  # relative to the repository root
    line: int  # 1-based line of the (first physical) line
    text: str  # the logical shell line, comments removed
    argv: tuple[str, ...]  # arguments after ``freqdense``

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


# ---------------------------------------------------------------------------------------------------------------------
# Extraction


def _strip_comment(line: str) -> str:
    """Drop a shell ``# comment``: a ``#`` at the start or after whitespace, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _split_commands(line: str) -> list[str]:
    """Split a shell line into simple commands at unquoted ``;``, ``&&`` and ``||`` (pipes are left alone)."""
    parts, quote, start, i = [], None, 0, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == ";" or line.startswith(("&&", "||"), i):
            parts.append(line[start:i])
            i += 1 if ch == ";" else 2
            start = i
            continue
        i += 1
    parts.append(line[start:])
    return [p.strip() for p in parts if p.strip()]


def _freqdense_argv(command: str) -> tuple[str, ...] | None:
    """The arguments of a ``freqdense`` invocation, or None when the command is something else."""
    try:
        tokens = shlex.split(command)
    except ValueError:  # unbalanced quotes: not a command line
        return None
    while tokens and (_ASSIGNMENT.match(tokens[0]) or tokens[0] in _PREFIX_WORDS):
        tokens = tokens[1:]
    if not tokens:
        return None
    if Path(tokens[0]).name == "freqdense":
        return tuple(tokens[1:])
    for i in range(len(tokens) - 1):  # python -m freqdense ..., torchrun ... -m freqdense ...
        if tokens[i] == "-m" and tokens[i + 1] == "freqdense":
            return tuple(tokens[i + 2 :])
    return None


def extract_commands(text: str, path: str = "<doc>") -> list[DocCommand]:
    """All ``freqdense`` invocations in the shell-like fenced code blocks of a markdown text."""
    found: list[DocCommand] = []
    fence: str | None = None
    shell = False
    pending, pending_line, previous_line = "", 0, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(raw)
        if fence is None:
            if match:
                fence = match.group("fence")
                shell = match.group("info").lower() in SHELL_LANGUAGES
            continue
        if match and raw.strip().startswith(fence[0] * len(fence)) and not match.group("info"):
            fence, pending = None, ""
            continue
        if not shell:
            continue
        line = raw.strip()
        if not pending:
            pending_line = number
            line = re.sub(r"^[$%>] ", "", line)  # prompts
        line = _strip_comment(line)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical, pending = (pending + line).strip(), ""
        if raw[:1].isspace() and logical.startswith(("[", "(", "-")) and found and found[-1].line == previous_line:
            # an indented continuation of a usage synopsis: ``freqdense x A [--b B]`` / ``    [--c C]``
            last = found.pop()
            extra = _freqdense_argv("freqdense " + logical) or ()
            found.append(DocCommand(last.path, last.line, f"{last.text} {logical}", last.argv + extra))
            previous_line = last.line
            continue
        previous_line = pending_line
        for command in _split_commands(logical):
            argv = _freqdense_argv(command)
            if argv is not None:
                found.append(DocCommand(path, pending_line, command, argv))
    return found


def _collect() -> list[DocCommand]:
    commands = []
    for doc in DOC_FILES:
        commands += extract_commands(doc.read_text(encoding="utf-8"), str(doc.relative_to(REPO)))
    return commands


DOC_COMMANDS = _collect()


# ---------------------------------------------------------------------------------------------------------------------
# Checking


class _ParseError(Exception):
    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: {message}")
        self.message = message


def _raise_parse_error(self: argparse.ArgumentParser, message: str) -> None:
    raise _ParseError(self.prog, message)


def _is_synopsis(argv: tuple[str, ...]) -> bool:
    """A usage synopsis (``[--opt N]``, ``A|B``, ``...``) rather than a runnable command."""
    for token in argv:
        if any(ch.isspace() for ch in token):  # a quoted value such as a row label "sum (baseline)"
            continue
        if token.startswith(("[", "(")) or token.endswith("..."):
            return True
        if "=" not in token and ("|" in token or token.endswith(("]", ")"))):
            return True
    return False


def _is_override(arg: str) -> bool:
    return "=" in arg and not arg.startswith(("-", "="))


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _check_synopsis(argv: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Problems of a synopsis line, and the sub-command path it names."""
    parser, path, problems = build_parser(), [], []
    tokens = [t.strip("[]()") for t in argv]
    i = 0
    while (action := _subparsers(parser)) is not None:
        while i < len(tokens) and tokens[i].startswith("-"):  # options before the sub-command
            i += 1
        if i >= len(tokens):
            break
        name = tokens[i]
        if name not in action.choices:
            problems.append(f"unknown sub-command {name!r} of {parser.prog!r}; choose from {sorted(action.choices)}")
            return problems, path
        parser, i = action.choices[name], i + 1
        path.append(name)
    for token in tokens[i:]:
        for alternative in token.split("|"):
            option = alternative.strip("[](),").split("=")[0]
            if option.startswith("-") and option not in parser._option_string_actions:
                problems.append(f"{parser.prog!r} has no option {option!r}")
    return problems, path


def check_command_line(argv: list[str] | tuple[str, ...]) -> list[str]:
    """Problems the real parser finds in ``freqdense <argv>``; empty when the line is valid.

    Full command lines must parse without errors and leave nothing over but ``section.key=value`` overrides (which
    ``main`` accepts after options); usage synopses must name existing sub-commands and options. In both cases
    ``main(<command path> + ["--help"])`` must exit with code 0.
    """
    argv = tuple(argv)
    sink = io.StringIO()
    if _is_synopsis(argv):
        problems, help_argv = _check_synopsis(argv)
    else:
        problems, help_argv = [], list(argv)
        parser = build_parser()
        try:
            with (
                mock.patch.object(argparse.ArgumentParser, "error", _raise_parse_error),
                contextlib.redirect_stdout(sink),
                contextlib.redirect_stderr(sink),
            ):
                namespace, extras = parser.parse_known_args(list(argv))
        except _ParseError as err:
            kind = "missing required argument" if "required" in err.message else "parse error"
            return [f"{kind}: {err}"]
        except SystemExit as exc:  # e.g. an explicit --help in the documented line
            if exc.code not in (0, None):
                return [f"exit {exc.code} while parsing: {sink.getvalue().strip()}"]
            namespace, extras = argparse.Namespace(), []
        takes_overrides = hasattr(namespace, "overrides")
        unknown = [e for e in extras if not (takes_overrides and _is_override(e))]
        if unknown:
            problems.append(f"unrecognized arguments: {' '.join(unknown)}")
        # ``overrides`` takes any string; the config loader later needs key=value.
        stray = [o for o in getattr(namespace, "overrides", None) or [] if not _is_override(o)]
        if stray:
            problems.append(f"not key=value overrides (a placeholder with a space, or a stray argument?): {stray}")
    if problems:
        return problems
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            main([*help_argv, "--help"])
    except SystemExit as exc:
        if exc.code not in (0, None):
            return [f"`freqdense {' '.join([*help_argv, '--help'])}` exited with {exc.code}: {sink.getvalue()[-500:]}"]
    else:
        return [f"`freqdense {' '.join([*help_argv, '--help'])}` did not exit (no --help action reached)"]
    return []


# ---------------------------------------------------------------------------------------------------------------------
# Tests


def test_docs_have_commands():
    # A broken extractor would silently check nothing.
    assert len(DOC_COMMANDS) >= 40, [c.id for c in DOC_COMMANDS]
    assert {c.path for c in DOC_COMMANDS} >= {"README.md", "docs/training.md"}


@pytest.mark.parametrize("command", DOC_COMMANDS, ids=[c.id for c in DOC_COMMANDS])
def test_documented_command_parses(command: DocCommand):
    problems = check_command_line(command.argv)
    assert not problems, f"{command.id}: `{command.text}`\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        "freqdense evaluate runs/x",  # renamed sub-command (the command is `eval`)
        "freqdense train cfg --bogus",  # unknown option
        "freqdense train cfg --out runs/x --bogus 3 optim.lr=0.1",
        "freqdense eval runs/x --spilt val",  # misspelt option
        "freqdense eval runs/x --device tpu",  # value outside the choices
        "freqdense predict runs/x photos/",  # --out is required
        "freqdense analyze spectrun runs/x",  # unknown analysis
        "freqdense data synthesize --out d",  # unknown data command
        "freqdense analyze spectrum RUN_DIR [--split val] [--bogus-option N]",  # synopsis with an unknown option
        "freqdense ablate CONFIG [CONFIG ...] (--seeds N | --seed-lists 0 1 2) --out DIR",
        "freqdense evaluate RUN [--split val]",  # synopsis with a renamed sub-command
    ],
)
def test_wrong_lines_are_caught(line):
    (command,) = extract_commands(f"```bash\n{line}\n```\n")
    assert check_command_line(command.argv), f"not caught: {line}"


@pytest.mark.parametrize(
    "line",
    [
        "freqdense train synthetic/demo_multitask --out runs/x optim.lr=0.1",
        "freqdense train synthetic/demo_multitask optim.lr=0.1 --out runs/x",
        "freqdense eval runs/x --split val",
        "freqdense analyze spectrum RUN_DIR [section.key=value ...] [--split val] [--shells square|radial]",
        "freqdense ablate CONFIG [CONFIG ...] (--seeds N | --seed-list 0 1 2) --out DIR",
    ],
)
def test_valid_lines_pass(line):
    (command,) = extract_commands(f"```bash\n{line}\n```\n")
    assert check_command_line(command.argv) == []


def test_help_alone_misses_unknown_options():
    # The reason for the parse step: with --help appended, argparse exits 0 although --bogus does not exist.
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
        main(["train", "cfg", "--bogus", "--help"])
    assert exc.value.code == 0
    assert check_command_line(["train", "cfg", "--bogus"])


def test_extraction_rules():
    text = "\n".join(
        [
            "```bash",
            "$ freqdense list   # models, backbones",
            "freqdense ablate a.yaml b.yaml --seeds 3 \\",
            "    --out runs/ab --labels 'x (y)' z",
            "torchrun --standalone --nproc-per-node 2 -m freqdense train CONFIG --out runs/x",
            "OMP_NUM_THREADS=1 python -m freqdense eval runs/x",
            'for s in 0 1; do freqdense analyze alignment "runs/a b/seed$s" --out o/$s; done',
            "make demo   # not freqdense",
            "pip install freqdense",
            "```",
            "freqdense outside a fence",
            "```python",
            "freqdense = 1",
            "```",
            "```console",
            "$ freqdense demo",
            "```",
        ]
    )
    commands = extract_commands(text, "x.md")
    assert [(c.line, c.argv) for c in commands] == [
        (2, ("list",)),
        (3, ("ablate", "a.yaml", "b.yaml", "--seeds", "3", "--out", "runs/ab", "--labels", "x (y)", "z")),
        (5, ("train", "CONFIG", "--out", "runs/x")),
        (6, ("eval", "runs/x")),
        (7, ("analyze", "alignment", "runs/a b/seed$s", "--out", "o/$s")),
        (16, ("demo",)),
    ]
    assert commands[0].id == "x.md:2"
