"""SEARCH/REPLACE and NEW FILE blocks: parsed from hand-written answers, applied exactly."""

from __future__ import annotations

import pytest

from juggernaut_assets.lib.edit_blocks import (
    EditBlock,
    MalformedAnswer,
    apply_blocks,
    parse_blocks,
    path_problem,
)

APP = 'def greet():\n    return "hi"\n\n\ndef main():\n    print(greet())\n'

GOOD = """I make the greeting take a name.

src/app.py
```python
<<<<<<< SEARCH
def greet():
    return "hi"
=======
def greet(name: str = "world") -> str:
    return f"hi {name}"
>>>>>>> REPLACE
```
"""


def test_good_block_inside_a_fence_is_parsed_and_applied_exactly():
    [block] = parse_blocks(GOOD)
    assert block == EditBlock(
        "src/app.py",
        'def greet():\n    return "hi"\n',
        'def greet(name: str = "world") -> str:\n    return f"hi {name}"\n',
    )
    applied = apply_blocks([block], {"src/app.py": APP})
    assert applied.failed == []
    assert applied.files == {
        "src/app.py": 'def greet(name: str = "world") -> str:\n    return f"hi {name}"\n'
        "\n\ndef main():\n    print(greet())\n"
    }
    assert applied.changed({"src/app.py": APP}) == applied.files


def test_blocks_apply_in_order_and_a_block_without_path_reuses_the_previous_one():
    answer = (
        '`src/app.py`:\n<<<<<<< SEARCH\n    return "hi"\n=======\n    return "hello"\n'
        '>>>>>>> REPLACE\n\n<<<<<<< SEARCH\n    return "hello"\n=======\n    return "hey"\n'
        ">>>>>>> REPLACE\n"
    )
    first, second = parse_blocks(answer)
    assert first.path == second.path == "src/app.py"
    applied = apply_blocks([first, second], {"src/app.py": APP})
    assert applied.failed == [] and '    return "hey"\n' in applied.files["src/app.py"]


def test_unmatched_search_is_failed_with_the_reason_and_the_others_still_apply():
    answer = (
        "src/app.py\n<<<<<<< SEARCH\ndef greet( ):\n=======\ndef hello():\n>>>>>>> REPLACE\n"
        "src/app.py\n<<<<<<< SEARCH\ndef main():\n=======\ndef run():\n>>>>>>> REPLACE\n"
    )
    applied = apply_blocks(parse_blocks(answer), {"src/app.py": APP})
    [failed] = applied.failed
    assert failed.block.search == "def greet( ):\n"
    assert "do not occur in src/app.py" in failed.reason and "exactly" in failed.reason
    assert [b.replace for b in applied.applied] == ["def run():\n"]
    assert "def run():\n" in applied.files["src/app.py"]


def test_search_must_start_at_a_line_start_and_match_whitespace_exactly():
    text = "value = 1\nold_value = 2\n"
    inner = EditBlock("a.py", "value = 2\n", "value = 3\n")
    spaced = EditBlock("a.py", "value  = 1\n", "value = 3\n")
    applied = apply_blocks([inner, spaced], {"a.py": text})
    assert len(applied.failed) == 2 and applied.files == {}


def test_ambiguous_search_matching_twice_is_refused():
    text = "x = 1\ny = 2\nx = 1\n"
    applied = apply_blocks([EditBlock("a.py", "x = 1\n", "x = 9\n")], {"a.py": text})
    [failed] = applied.failed
    assert "occur 2 times in a.py" in failed.reason
    assert applied.files == {}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("I would change the greeting, but here is no block.", "holds no edit blocks"),
        ("", "holds no edit blocks"),
        (
            "src/app.py\n<<<<<<< SEARCH\ndef greet():\n=======\ndef hello():\n",
            "block 1 (src/app.py) is unterminated",
        ),
        (
            "src/app.py\n<<<<<<< SEARCH\ndef greet():\n>>>>>>> REPLACE\n",
            "block 1 (src/app.py) is malformed: found '>>>>>>> REPLACE' where '=======' ",
        ),
        (
            "<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n",
            "block 1 names no file",
        ),
        ("a.py\n=======\ny\n>>>>>>> REPLACE\n", "marker outside any block"),
        (
            "a.py\n<<<<<<< SEARCH\nx\n=======\ny\nb.py\n<<<<<<< SEARCH\nz\n=======\nw\n"
            ">>>>>>> REPLACE\n",
            "block 1 (a.py) is malformed: found '<<<<<<< SEARCH'",
        ),
        ("new.md\n<<<<<<< NEW FILE\n# Title\n", "block 1 (new.md) is unterminated"),
    ],
)
def test_malformed_answers_say_what_is_wrong(answer, expected):
    with pytest.raises(MalformedAnswer) as err:
        parse_blocks(answer)
    assert expected in str(err.value)


def test_new_file_block_creates_a_file_and_an_empty_search_does_too():
    answer = (
        "docs/usage.md\n```markdown\n<<<<<<< NEW FILE\n# Usage\n\n=======\n\nRun it.\n"
        ">>>>>>> NEW FILE\n```\n"
        "src/extra.py\n<<<<<<< SEARCH\n=======\nVALUE = 1\n>>>>>>> REPLACE\n"
    )
    usage, extra = parse_blocks(answer)
    assert usage.new_file and usage.creates and usage.replace == "# Usage\n\n=======\n\nRun it.\n"
    assert extra.creates and not extra.new_file
    applied = apply_blocks([usage, extra], {"src/app.py": APP})
    assert applied.failed == []
    assert applied.changed({"src/app.py": APP}) == {
        "docs/usage.md": "# Usage\n\n=======\n\nRun it.\n",
        "src/extra.py": "VALUE = 1\n",
    }


def test_creating_a_file_that_exists_is_refused():
    new_file = EditBlock("src/app.py", "", "replaced\n", new_file=True)
    empty_search = EditBlock("src/app.py", "", "appended\n")
    applied = apply_blocks([new_file, empty_search], {"src/app.py": APP})
    assert [f.reason.split(":")[0] for f in applied.failed] == ["src/app.py already exists"] * 2
    assert applied.files == {}


def test_search_on_a_file_that_does_not_exist_is_refused():
    applied = apply_blocks([EditBlock("src/missing.py", "x\n", "y\n")], {"src/app.py": APP})
    [failed] = applied.failed
    assert "src/missing.py does not exist" in failed.reason


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/Windows/x.txt", "absolute"),
        ("~/x", "absolute"),
        ("../outside.py", "leaves the repository"),
        ("src/../../outside.py", "leaves the repository"),
        (".git/config", "inside .git/"),
        ("sub/.git/hooks/pre-commit", "inside .git/"),
        ("src\\app.py", "backslashes"),
        ("src//app.py", "not a file path"),
        ("src/", "not a file path"),
        ("", "empty"),
    ],
)
def test_paths_outside_the_repository_are_refused(path, expected):
    problem = path_problem(path)
    assert problem is not None and expected in problem
    applied = apply_blocks([EditBlock(path, "", "pwned\n", new_file=True)], {})
    [failed] = applied.failed
    assert expected in failed.reason and applied.files == {}


def test_plain_relative_paths_are_accepted_and_dot_segments_normalised():
    assert path_problem("src/app.py") is None and path_problem(".github/workflows/ci.yml") is None
    applied = apply_blocks(
        [EditBlock("./src/./app.py", "def main():\n", "def run():\n")], {"src/app.py": APP}
    )
    assert applied.failed == [] and list(applied.files) == ["src/app.py"]


def test_a_file_without_final_newline_keeps_it_that_way():
    text = "first\nlast"
    applied = apply_blocks([EditBlock("a.txt", "last\n", "final\n")], {"a.txt": text})
    assert applied.files == {"a.txt": "first\nfinal"}


def test_crlf_files_are_matched_and_keep_crlf():
    text = "one\r\ntwo\r\n"
    applied = apply_blocks([EditBlock("a.txt", "two\n", "2\n")], {"a.txt": text})
    assert applied.files == {"a.txt": "one\r\n2\r\n"}


def test_render_quotes_a_block_back_in_the_prompt_format():
    [block] = parse_blocks(GOOD)
    assert parse_blocks(block.render()) == [block]
    new = EditBlock("n.md", "", "x\n", new_file=True)
    assert parse_blocks(new.render()) == [new]
