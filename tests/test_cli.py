"""The command line: every registered command resolves, and the demo runs end to end."""

import argparse
import importlib

import pytest

from wordexperts.harness.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize(("words", "module"), [(w, m) for w, m, _ in COMMANDS])
def test_every_command_has_configure_and_run(words, module):
    mod = importlib.import_module(module)
    assert callable(mod.configure) and callable(mod.run)
    parser = build_parser(list(words))
    args, _ = parser.parse_known_args([*words, "a [MASK] sentence"] if words == ("explain",)
                                      else list(words))
    assert args._module == module


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(words[0] in out for words, _, _ in COMMANDS)


def test_unknown_command_fails():
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "table9"])
    assert exit_.value.code == 2


def test_core_demo_runs_and_checks_equivalence(capsys):
    from wordexperts.harness.demo import core_demo

    core_demo(epochs=3, seed=0, row=1)
    out = capsys.readouterr().out
    assert "max |log p attention - log p experts|" in out
    diffs = [float(line.rsplit("=", 1)[1]) for line in out.splitlines() if "max |log p" in line]
    assert len(diffs) == 2 and max(diffs) < 1e-10
    assert "y=[MASK]" in out


def test_demo_parser_defaults_and_help(capsys):
    from wordexperts.harness.demo import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args([])
    assert (args.epochs, args.seed, args.row, args.seeds, args.out, args.tables,
            args.progress) == (300, 0, 0, 3, "runs/demo", True, True)
    assert parser.parse_args(["--no-progress"]).progress is False
    parser.print_help()
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--epochs", "300"), ("--seed", "0"), ("--row", "0"),
                            ("--seeds", "3"), ("--out", "runs/demo")):
        assert option in text
        # every option says what it does and its default
        after = text.rsplit(f"{option} {option.strip('-').upper()}", 1)[1]
        assert f"(default: {default})" in after.split("--", 1)[0]
