"""`python -m experiments.packing_stats`: one table row per packing, from the real instances."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_packing_stats_table(data_root, text_files, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "experiments.packing_stats", "--config.data.corpus=text_files",
         "--config.data.text_files=(" + ",".join(f"'{f}'" for f in text_files) + ",)",
         f"--config.data.tfds_data_dir={data_root / 'tfds'}",
         f"--config.data.cache_dir={tmp_path / 'cache'}", "--config.data.max_seq_len=32",
         "--config.data.dupe_factor=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"packing", "full_sentences", "doc_sentences", "packed_documents"}
    ratio = float(rows["packed_documents"][4])
    fill = {k: float(v[2].rstrip("%")) for k, v in rows.items() if k != "packing"}
    assert rows["doc_sentences"][4] == "1.000" and ratio < 1.0
    assert fill["packed_documents"] > fill["doc_sentences"]
    assert float(rows["packed_documents"][3]) > 1.0  # several sequences per row


def test_packing_stats_bad_corpus_is_one_line():
    run = subprocess.run(
        [sys.executable, "-m", "experiments.packing_stats", "--config.data.corpus=text_files",
         "--config.data.text_files=('/no/such.txt',)"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "error: data.text_files: '/no/such.txt' matches no file; fix the path or the glob.")
