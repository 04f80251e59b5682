"""The README's command lines stay real: every `python -m …` line in a code
block parses with that command's own parser, every `make …` names a target
the Makefile has (the guides beside it too). No Caffe, nothing is run."""
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDES = ["README.md", "docker/README.md", "dec/bench/README.md", "caffe_models/README.md",
          *sorted(str(p.relative_to(REPO)) for p in (REPO / "caffe_models").glob("*/readme.md"))]


def command_lines(text):
    """Lines of sh code blocks, continuations joined, comments and the
    usage brackets ([--opt V], a|b) removed."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        joined = re.sub(r"\n\s+\[", " [", joined)             # a usage line's options below it
        for line in joined.splitlines():
            line = re.split(r"\s#", line, maxsplit=1)[0].strip()
            if line.startswith("#") or not line:
                continue
            line = line.replace("[", "").replace("]", "")
            line = re.sub(r"([^\s|]+)(?:\|[^\s|]+)+", r"\1", line)   # a|b|c: the first
            for part in re.split(r"\s&&\s", line):
                lines.append(part.strip())
    return lines


def parser_of(module):
    if module == "dec":
        from dec.__main__ import parser
        return parser()
    if module == "data_prep":
        from data_prep.__main__ import parser
        return parser()
    return None


def make_targets():
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.%-]+):", text, re.M))


@pytest.mark.parametrize("guide", GUIDES)
def test_every_command_line_of_the_guide_parses(guide):
    targets = make_targets()
    checked = 0
    for line in command_lines((REPO / guide).read_text()):
        words = shlex.split(line)
        if words[:2] == ["python", "-m"]:
            parser = parser_of(words[2])
            if parser is None:
                assert words[2] in ("dec.nets", "dec.caffenet.nets"), line
                continue
            try:
                parser.parse_args(words[3:])
            except SystemExit as exit:
                if exit.code == 0 and "--help" in words:
                    checked += 1
                    continue
                pytest.fail(f"{guide}: `{line}` does not parse (exit {exit.code})")
            checked += 1
        elif words[0] == "make":
            for word in words[1:]:
                if "=" in word:
                    continue
                assert word in targets or any(
                    t.endswith("%") and word.startswith(t[:-1]) for t in targets), \
                    f"{guide}: make {word}: no such target"
            checked += 1
    if guide == "README.md":
        assert checked > 40                    # the guide is checked, not skipped


def test_the_check_itself_catches_a_bad_line():
    bad = "```sh\npython -m dec run mnist --no-such-option 3\nmake no-such-target\n```\n"
    lines = command_lines(bad)
    with pytest.raises(SystemExit):
        parser_of("dec").parse_args(shlex.split(lines[0])[3:])
    assert "no-such-target" not in make_targets()
