"""The interactive pages (``explain --html``, ``explain-table --html``) in a real browser.

Headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) opens each page from its
file, the view chosen by the URL fragment, and dumps the DOM after the page's script ran.
The tests read the numbers the page shows (each shown value keeps its exact number in
``data-value``) and check them against ``explain.json`` and the CSVs of the same run, that
the page made no request (its Content-Security-Policy allows none: a blocked request is
counted by the page and logged by Chromium, and a page with an injected image shows both),
and that the console stayed empty (no error, no log). The explanation's page is opened on a
509-token sentence and the table's on 100 columns; both must render within seconds.

Skipped where no ``chromium`` is installed, except under CI (``CI`` set), where that fails.
"""

import argparse
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from conftest import in_ci

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        message = "no chromium on PATH (apt-get install -y chromium; .ci/run installs it)"
        if in_ci():
            pytest.fail(f"{message}; CI requires the browser tests", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


class Elements(HTMLParser):
    """Every element's tag, attributes and own text, by id and in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.all: list[dict] = []
        self.open: list[dict] = []

    def handle_starttag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.all.append(node)
        if tag not in ("meta", "br", "input", "img"):
            self.open.append(node)

    def handle_endtag(self, tag):
        while self.open and self.open.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        if self.open:
            self.open[-1]["text"] += data

    def by_id(self, name):
        (node,) = [n for n in self.all if n["attrs"].get("id") == name]
        return node

    def having(self, cls):
        return [n for n in self.all if cls in n["attrs"].get("class", "").split()]


def open_page(chromium, path, fragment="", tmp_path=None):
    """Load ``path#fragment`` headless; returns the parsed DOM and the console lines."""
    out = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", f"{path.resolve().as_uri()}#{fragment}"],
        capture_output=True, text=True, timeout=120, check=True)
    dom = Elements()
    dom.feed(out.stdout)
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    return dom, console


def check_clean(dom, console):
    body = [n for n in dom.all if n["tag"] == "body"][0]
    assert body["attrs"]["data-ready"] == "1"            # the script ran to its end
    assert dom.by_id("violations")["attrs"]["data-count"] == "0"
    assert console == []
    return int(body["attrs"]["data-render-ms"])


def check_self_contained(page):
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)[1]
    assert "default-src 'none'" in policy and "unsafe" not in policy
    assert not re.search(r"\b(src|href)=|https?://|@import|url\(", page)


def shown(node, digits=4):
    """The exact value of a cell and a check that its text shows it rounded."""
    x = float(node["attrs"]["data-value"])
    if x == 0 or abs(x) >= 10 ** -digits:
        assert node["text"] == f"{x:.{digits}f}"
    return x


# --- the checkpoint's page -----------------------------------------------------------------


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """The explain command with --html on a random BERT, a sentence of 509 tokens."""
    pytest.importorskip("transformers")
    from test_bert import tiny_bert

    import wordexperts.harness.explain as command
    from wordexperts.bert import load_bert

    folder = tmp_path_factory.mktemp("page")
    ck = tiny_bert(folder / "ck", hidden_act="gelu", max_positions=512)
    words = "the cat sat on the mat .".split()
    sentence = " ".join(words[n % len(words)] for n in range(300)) + " [MASK] " + " ".join(
        words[n % len(words)] for n in range(206))
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args([sentence, "--folder", str(ck), "--out", str(folder / "out"),
                              "--html", "--format", "png"])
    assert command.run(args) == 0
    assert len(load_bert(ck).encode(sentence)) == 509
    return folder / "out"


def test_explain_page_shows_the_gates_of_the_chosen_layer_and_head(chromium, explained,
                                                                   tmp_path):
    data = json.loads((explained / "explain.json").read_text())
    page = (explained / "explain.html").read_text()
    check_self_contained(page)
    dom, console = open_page(chromium, explained / "explain.html",
                             "view=gates&layer=2&head=2&token=301", tmp_path)
    assert check_clean(dom, console) < 5000
    tokens = dom.having("tok")
    gates = data["layers"][1]["heads"][1]["gates"]
    assert [t["text"] for t in tokens] == data["tokens"] and len(tokens) == 509
    assert [float(t["attrs"]["data-gate"]) for t in tokens] == gates
    assert dom.by_id("info-token")["text"] == "[MASK]" == data["tokens"][301]
    assert data["mask_position"] == 301
    assert dom.by_id("info-layer-head")["text"] == "layer 2, head 2"
    assert shown(dom.by_id("info-gate")) == gates[301]
    experts = data["layer1_experts"]
    assert shown(dom.by_id("info-expert")) == experts["expert_norms"][1][301]
    assert shown(dom.by_id("info-norm")) == experts["word_norms"][301]
    assert shown(dom.by_id("info-share")) == experts["word_shares"][301]
    assert shown(dom.by_id("cell-1-2"), 1) == data["layers"][0]["heads"][1]["effective_experts"]
    assert dom.by_id("view-experts")["attrs"]["class"] == "hidden"


def test_explain_page_shows_the_layer1_experts(chromium, explained, tmp_path):
    data = json.loads((explained / "explain.json").read_text())
    dom, console = open_page(chromium, explained / "explain.html", "view=experts&head=1",
                             tmp_path)
    check_clean(dom, console)
    experts = data["layer1_experts"]
    assert [shown(n) for n in dom.having("share")] == experts["word_shares"]
    assert [shown(n) for n in dom.having("norm")] == experts["word_norms"]
    assert [float(n["attrs"]["data-value"]) for n in dom.having("expert")] == \
        experts["expert_norms"][0]
    # no token given: the most gated one of the layer and head is shown
    gates = data["layers"][0]["heads"][0]["gates"]
    assert int(dom.by_id("info-position")["text"]) == int(np.argmax(gates))
    assert dom.by_id("view-gates")["attrs"]["class"] == "hidden"


def test_a_request_from_the_page_is_blocked_and_seen(chromium, explained, tmp_path):
    """The checks above can fail: the same page with an image from the network injected."""
    page = (explained / "explain.html").read_text()
    bad = tmp_path / "bad.html"
    bad.write_text(page.replace("</body>", '<img src="https://example.invalid/x.png"></body>'))
    dom, console = open_page(chromium, bad, "", tmp_path)
    assert int(dom.by_id("violations")["attrs"]["data-count"]) >= 1
    assert any("example.invalid" in line and "Content Security Policy" in line
               for line in console)


# --- the table's page ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_explained(tmp_path_factory):
    """explain-table --html on a saved classifier of 100 columns, with a reference."""
    from wordexperts import WordExpertsClassifier
    from wordexperts.harness.cli import main

    rng = np.random.default_rng(0)
    n, columns = 40, [f"x{k}" for k in range(100)]
    X = pd.DataFrame(rng.choice(["a", "b", "c"], size=(n, 100)), columns=columns)
    y = np.where(X["x0"] == "b", "yes", "no")
    folder = tmp_path_factory.mktemp("table")
    # a short fit (the paper preset's masked copies, one epoch): the page, not the model, is
    # under test
    WordExpertsClassifier(preset="paper", epochs=1, random_state=0).fit(X, y).save(
        folder / "model")
    X.iloc[:20].to_csv(folder / "data.csv", index=False)
    X.iloc[20:].to_csv(folder / "reference.csv", index=False)
    out = folder / "out"
    assert main(["explain-table", str(folder / "model"), str(folder / "data.csv"),
                 "--rows", "0", "7", "--reference", str(folder / "reference.csv"),
                 "--out", str(out), "--html", "--format", "png"]) == 0
    return out


def test_table_page_shows_each_column_beside_importance_and_shift(chromium, table_explained,
                                                                  tmp_path):
    page = (table_explained / "explain-table.html").read_text()
    check_self_contained(page)
    dom, console = open_page(chromium, table_explained / "explain-table.html",
                             "row=7&sort=importance", tmp_path)
    assert check_clean(dom, console) < 5000
    frame = pd.read_csv(table_explained / "contributions.csv")
    row = frame[frame["row"] == 7]
    importance = pd.read_csv(table_explained / "importance.csv", index_col=0)["importance"]
    shift = pd.read_csv(table_explained / "gate_shift.csv", index_col=0)
    rows = [n for n in dom.all if n["tag"] == "tr" and "data-column" in n["attrs"]]
    names = [n["attrs"]["data-column"] for n in rows]
    assert len(rows) == 102 and names[-1] == "(bias)"           # 100 columns, target, bias
    assert set(names) == set(row["column"])
    # sorted by global importance, largest first
    assert names[:100] == list(importance.sort_values(ascending=False, kind="stable").index)
    gates = {c: shown(n) for c, n in zip(names, dom.having("gate"), strict=True)
             if c != "(bias)"}
    klass = dom.by_id("predicted")["text"].split("predicted class ")[1].split(";")[0]
    mine = row[row["class"].astype(str) == klass].set_index("column")
    for column, gate in gates.items():
        assert gate == pytest.approx(mine.loc[column, "gate"], abs=1e-12)
    contributions = dict(zip(names, dom.having("contribution"), strict=True))
    for column, node in contributions.items():
        assert shown(node) == pytest.approx(mine.loc[column, "contribution"], abs=1e-12)
    cells = {key: dict(zip(names, dom.having(key), strict=True))
             for key in ("importance", "shift", "reference", "data")}
    for column, value in importance.items():
        assert shown(cells["importance"][column]) == pytest.approx(value, abs=1e-12)
    assert "data-value" not in cells["importance"]["(bias)"]["attrs"]
    for column, values in shift.iterrows():
        assert shown(cells["shift"][column]) == pytest.approx(values["shift"], abs=1e-12)
        assert shown(cells["reference"][column]) == pytest.approx(values["gate_reference"],
                                                                  abs=1e-12)
        assert shown(cells["data"][column]) == pytest.approx(values["gate_data"], abs=1e-12)
