"""The command line: every registered command resolves to its module's options, the demo
runs end to end, ``--version``, and ``explain-table`` on bad input: named files, columns and
rows, no output folder left behind, one clean line per warning."""

import argparse
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import wordexperts
from wordexperts.harness import cli
from wordexperts.harness.cli import COMMANDS, build_parser, main


def check_command(words: tuple[str, ...], module: str, help_: str, capsys) -> None:
    """What the command's module's ``configure`` adds is really the command's: arguments, each
    with help text, shown by ``wordexperts WORDS --help`` under the command's description and
    parsed (their defaults) by the CLI's own parser."""
    mod = cli._load(module)
    assert callable(mod.run)
    fresh = argparse.ArgumentParser()
    mod.configure(fresh)
    added = [a for a in fresh._actions if not isinstance(a, argparse._HelpAction)]
    assert added, f"{module}.configure adds no argument"
    for action in added:
        assert action.help and action.help.strip(), f"{module}: {action.dest} has no help"
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert help_ in " ".join(text.split())  # the description, however argparse wraps it
    for action in added:
        for option in action.option_strings or [action.metavar or action.dest]:
            assert option in text, (module, option)
    argv = [*words, "a [MASK] sentence"] if words == ("explain",) else list(words)
    args, _ = build_parser(argv).parse_known_args(argv)
    assert args._module == module
    assert {a.dest for a in added} <= set(vars(args)), module


@pytest.mark.parametrize(("words", "module", "help_"), COMMANDS,
                         ids=[" ".join(w) for w, _, _ in COMMANDS])
def test_every_command_is_configured_by_its_module(words, module, help_, capsys):
    check_command(words, module, help_, capsys)


def test_the_command_check_fails_for_a_module_that_configures_nothing(monkeypatch, capsys):
    words, module, help_ = COMMANDS[0]
    real = cli._load(module)
    fake = argparse.Namespace(configure=lambda parser: None, run=real.run)
    monkeypatch.setattr(cli, "_load", lambda name: fake if name == module else real)
    with pytest.raises(AssertionError, match="adds no argument"):
        check_command(words, module, help_, capsys)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"wordexperts {wordexperts.__version__}"


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


# --------------------------------------------------------------------------- explain-table


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small saved classifier (numeric ``w`` and ``k``, categorical ``c``) and its CSV."""
    from wordexperts import WordExpertsClassifier

    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame({"w": rng.normal(size=n).round(3), "c": rng.choice(["a", "b", "c"], n),
                      "k": rng.integers(0, 3, n)})
    y = np.where(X["w"] + (X["c"] == "a") > 0.3, "hi", "lo")
    folder = tmp_path_factory.mktemp("explain-table")
    clf = WordExpertsClassifier(epochs=3, random_state=0).fit(X, y)
    assert [(c.name, c.numeric) for c in clf.columns_] == [("w", True), ("c", False),
                                                           ("k", True)]
    clf.save(folder / "model")
    X.assign(y=y).to_csv(folder / "data.csv", index=False)
    return folder / "model", X


def explain_table(model, data, out, *more):
    return main(["explain-table", str(model), str(data), "--out", str(out), *more])


def test_explain_table_names_the_column_and_row_of_text_in_a_numeric_column(
        saved_model, tmp_path, capsys):
    model, X = saved_model
    bad = X.astype({"k": object})
    bad.loc[[7, 40], "k"] = ["seven", "forty"]
    bad.to_csv(tmp_path / "bad.csv", index=False)
    X.to_csv(tmp_path / "good.csv", index=False)
    out = tmp_path / "out"
    assert explain_table(model, tmp_path / "bad.csv", out) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "bad.csv") in err and "column 'k'" in err and "row 7 " in err
    assert "'seven'" in err
    assert not out.exists()  # validated before anything is written
    # the same in the reference CSV
    assert explain_table(model, tmp_path / "good.csv", out, "--reference",
                         str(tmp_path / "bad.csv")) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "bad.csv") in err and "column 'k'" in err and "row 7 " in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv"]


@pytest.mark.parametrize(("content", "says"), [
    (b"", "is empty"),
    (b"w,c,k\n", "has a header but no rows"),
    ("w,c,k\n1.0,caf\u00e9,1\n".encode("latin-1"), "is not UTF-8"),
    (b"w,c,k\n1.0,a,1\n2.0,b,1,5,6\n", "cannot read"),
], ids=["empty", "header-only", "latin-1", "ragged"])
def test_explain_table_names_the_csv_it_cannot_read(saved_model, tmp_path, capsys, content,
                                                    says):
    model, X = saved_model
    (tmp_path / "broken.csv").write_bytes(content)
    X.to_csv(tmp_path / "good.csv", index=False)
    out = tmp_path / "out"
    for argv in ([tmp_path / "broken.csv"],
                 [tmp_path / "good.csv", "--reference", str(tmp_path / "broken.csv")]):
        assert explain_table(model, argv[0], out, *argv[1:]) == 2
        err = capsys.readouterr().err
        assert err.startswith("wordexperts: error: ") and err.count("\n") == 1, err
        assert str(tmp_path / "broken.csv") in err and says in err, err
        assert not out.exists()


def test_explain_table_warns_once_per_unseen_category(saved_model, tmp_path, capsys):
    model, X = saved_model
    X.assign(c=X["c"].where(X.index != 2, "zzz")).to_csv(tmp_path / "new.csv", index=False)
    assert explain_table(model, tmp_path / "new.csv", tmp_path / "out", "--rows", "2",
                         "--reference", str(tmp_path / "new.csv")) == 0
    err = capsys.readouterr().err
    assert err.count("'zzz'") == 1, err
    assert err.splitlines() == [
        "wordexperts: warning: X has categories not seen in fit, column 'c': ['zzz']; "
        "read as missing (the mask)"]


def test_explain_table_warning_on_the_command_line_is_one_clean_line(saved_model, tmp_path):
    """As a user sees it (no pytest warning capture): once, without Python's source line."""
    model, X = saved_model
    X.assign(c=X["c"].where(X.index != 2, "zzz")).to_csv(tmp_path / "new.csv", index=False)
    result = subprocess.run(
        [sys.executable, "-m", "wordexperts.harness.cli", "explain-table", str(model),
         str(tmp_path / "new.csv"), "--rows", "2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("'zzz'") == 1, result.stderr
    assert "warnings.warn(" not in result.stderr and "UserWarning" not in result.stderr
    assert "wordexperts: warning: X has categories not seen in fit" in result.stderr


def test_explain_table_adds_its_files_to_an_existing_folder_and_leaves_no_scratch(
        saved_model, tmp_path, capsys):
    model, X = saved_model
    X.to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "runs" / "out"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    assert explain_table(model, tmp_path / "data.csv", out, "--rows", "1", "1", "3") == 0
    assert "wrote " + str(out / "contributions.csv") in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "contributions.csv", "importance.csv", "importance.png", "notes.txt", "row_1.png",
        "row_3.png"]
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no scratch folder left
    assert explain_table(model, tmp_path / "data.csv", tmp_path / "new" / "out") == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["out"]
    assert pd.read_csv(tmp_path / "new" / "out" / "contributions.csv")["row"].unique() == [0]
