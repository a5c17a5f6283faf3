"""Nothing in a batch config can run a command or write outside results/: the rules hand user
strings only to Python scripts (never to a shell), and ids and patterns are checked."""

import re

from conftest import REPO


def test_no_rule_runs_a_shell_command():
    """User strings (ids, paths, patterns) reach jobs as params of `script:` rules only."""
    for rule_file in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = rule_file.read_text()
        assert not re.search(r"^\s*(shell|run):", text, re.MULTILINE), f"{rule_file.name} has a shell: or run: block"
        assert "os.system" not in text and "subprocess" not in text, rule_file.name


def test_scripts_start_no_processes():
    for script in sorted((REPO / "scripts").glob("*.py")):
        text = script.read_text()
        assert "subprocess" not in text and "os.system" not in text and "shell=True" not in text, script.name
