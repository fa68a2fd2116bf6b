"""Time ``wordexperts explain`` and the one-pass layer-1 gates of all masked positions.

Run: ``.venv/bin/python benchmarks/bench_explain.py`` (single-threaded, offline, ~1 minute).

1. End to end: a fresh Python process running ``wordexperts explain`` (imports, checkpoint
   reading with safetensors + tokenizers, table, JSON, PNG; no ``transformers``): median
   wall time of 3, and mean CPU time (less sensitive to other jobs on the machine); the
   same with ``--check`` (which imports ``transformers`` and runs it on the sentence).
2. Stages in one process: reading the checkpoint, one explanation, the JSON file, the PNG.
3. Layer-1 gates at every masked position of a sentence (the paper's pi_ij for all i):
   the expert form reads them from one pass (``BertExperts.mask_gates``); with
   ``transformers`` they take the L masked copies, run as one batch: through all 6 layers
   (what reading ``output_attentions`` costs) and through a copy of the model cut to its
   first layer (the like-for-like cost).
"""

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from wordexperts.bert.explain import cached_checkpoint, explain
from wordexperts.bert.render import save_figure, save_json
from wordexperts.core.threads import single_thread
from wordexperts.harness.provenance import environment

SENTENCE = "The capital of France is [MASK]."
LONG = ("In 1905, while working as a clerk at the patent office in Bern, the young physicist "
        "published four papers that changed our understanding of space, time and light.")
RESULTS = Path(__file__).parent / "results" / "bench_explain.json"


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def end_to_end(out: str, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "wordexperts", "explain", SENTENCE, "--out", out,
                    *extra], check=True, capture_output=True)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and mean CPU time (children) of ``repeats`` runs of ``fn``."""
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = median_seconds(fn, repeats)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime) / repeats


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as out:
        # CPU time moves less than wall time when other jobs share the cores
        results["end_to_end_s"], results["end_to_end_cpu_s"] = timed(lambda: end_to_end(out), 3)
        results["end_to_end_check_s"], results["end_to_end_check_cpu_s"] = timed(
            lambda: end_to_end(out, "--check"), 3)
        results["load_s"] = median_seconds(lambda: cached_checkpoint(None), 1)
        ck = cached_checkpoint(None)
        explain(SENTENCE)  # warm-up
        results["explain_s"] = median_seconds(lambda: explain(SENTENCE), 5)
        ex = explain(SENTENCE)
        results["json_s"] = median_seconds(lambda: save_json(ex, Path(out) / "e.json"), 3)
        results["png_s"] = median_seconds(lambda: save_figure(ex, Path(out) / "e.png"), 3)

    ids = torch.tensor(ck.tokenizer.encode(LONG).ids)
    length = len(ids)
    copies = ids.repeat(length, 1)
    copies.fill_diagonal_(ck.mask_id)

    def one_pass():
        return ck.experts.mask_gates(ids, mask_id=ck.mask_id)

    first_layer = copy.deepcopy(ck.transformers_model)
    first_layer.encoder.layer = first_layer.encoder.layer[:1]

    def masked_copies(model):
        with torch.no_grad():
            att = model(input_ids=copies, output_attentions=True).attentions[0]
        return att[torch.arange(length), :, torch.arange(length)].transpose(0, 1)

    results["all_masks_tokens"] = length
    results["all_masks_max_abs_gap"] = max(
        float((one_pass() - masked_copies(m)).abs().max())
        for m in (ck.transformers_model, first_layer))
    results["all_masks_one_pass_s"] = median_seconds(one_pass, 20)
    results["all_masks_copies_s"] = median_seconds(
        lambda: masked_copies(ck.transformers_model), 5)
    results["all_masks_copies_layer1_s"] = median_seconds(lambda: masked_copies(first_layer), 5)
    for key in ("copies", "copies_layer1"):
        results[f"all_masks_ratio_{key}"] = (results[f"all_masks_{key}_s"]
                                            / results["all_masks_one_pass_s"])

    print(f"explain end to end (fresh process, median of 3): {results['end_to_end_s']:.2f} s "
          f"wall, {results['end_to_end_cpu_s']:.2f} s CPU (mean); with --check "
          f"{results['end_to_end_check_s']:.2f} s wall, {results['end_to_end_check_cpu_s']:.2f} s "
          f"CPU; load average {os.getloadavg()[0]:.1f}")
    print(f"  read checkpoint {results['load_s']:.2f} s, explain one sentence "
          f"{results['explain_s'] * 1e3:.0f} ms, JSON {results['json_s'] * 1e3:.0f} ms, "
          f"PNG {results['png_s']:.2f} s")
    print(f"layer-1 gates at all {length} masked positions (max abs gap "
          f"{results['all_masks_max_abs_gap']:.1e}): one pass "
          f"{results['all_masks_one_pass_s'] * 1e3:.2f} ms; transformers on the {length} masked "
          f"copies: all 6 layers {results['all_masks_copies_s'] * 1e3:.1f} ms "
          f"({results['all_masks_ratio_copies']:.0f}x), first layer only "
          f"{results['all_masks_copies_layer1_s'] * 1e3:.1f} ms "
          f"({results['all_masks_ratio_copies_layer1']:.0f}x)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results["environment"] = environment()
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    with single_thread():
        main()
