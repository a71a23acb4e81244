"""Bad input files for the reliability tests, made on the spot (Pillow, pypdf, sox): nothing is committed.

Each builder writes one file into `folder` and returns its path. The files are small (the 50 MB text file
is one block written over and over) and stand for what real users and attackers send.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small valid image in `fmt` (PNG, JPEG, WEBP) with some structure, so truncation hits pixel data."""
    from PIL import Image

    img = Image.new("RGB", size)
    img.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def truncated_image(folder: Path, fmt: str, suffix: str) -> Path:
    data = image_bytes(fmt, (256, 192))
    path = folder / f"truncated{suffix}"
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_image(folder: Path, fmt: str, suffix: str) -> Path:
    """A valid header followed by garbage instead of the pixel data."""
    data = image_bytes(fmt, (256, 192))
    keep = {"PNG": 33, "JPEG": 200, "WEBP": 30}[fmt]
    path = folder / f"corrupt{suffix}"
    path.write_bytes(data[:keep] + bytes((i * 37) % 251 for i in range(len(data) - keep)))
    return path


def png_bomb(folder: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A 1×1 PNG whose header claims `width`×`height` (10 Gpx by default): a decompression bomb."""
    data = bytearray(image_bytes("PNG", (1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    path = folder / "bomb.png"
    path.write_bytes(bytes(data))
    return path


def empty(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(b"")
    return path


def lying(folder: Path, name: str, data: bytes) -> Path:
    """A file whose suffix says one type while its bytes are another."""
    path = folder / name
    path.write_bytes(data)
    return path


def latin1_text(folder: Path) -> Path:
    path = folder / "latin1.txt"
    path.write_bytes("Crème brûlée à la française, 12 € the portion.\n".encode("latin-1", "replace"))
    return path


def mixed_encoding_text(folder: Path) -> Path:
    """UTF-8 first, then a Windows-1252 paragraph pasted in: valid nowhere as a whole."""
    path = folder / "mixed.md"
    path.write_bytes("# Café notes\n\nThe first part is UTF-8: naïve.\n".encode()
                     + "Then cp1252 “smart quotes” and déjà vu.\n".encode("cp1252"))
    return path


def big_text(folder: Path, megabytes: int = 50) -> Path:
    path = folder / "big.txt"
    block = ("All work and no play makes Jack a dull boy. " * 24 + "\n").encode()
    with open(path, "wb") as fh:
        for _ in range(megabytes * 1_000_000 // len(block) + 1):
            fh.write(block)
    return path


def scanned_pdf(folder: Path) -> Path:
    """A PDF with pages but no text layer (what a scanner writes, minus the picture)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_blank_page(612, 792)
    path = folder / "scan.pdf"
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def encrypted_pdf(folder: Path, text_pdf: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(str(text_pdf)).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    path = folder / "locked.pdf"
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def truncated_file(source: Path, folder: Path, name: str, keep: float = 0.3) -> Path:
    data = source.read_bytes()
    path = folder / name
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def sox_audio(folder: Path, name: str, *effects: str) -> Path:
    """Two seconds of a tone written by sox in the format its suffix names."""
    sox = shutil.which("sox")
    if sox is None:
        raise FileNotFoundError("sox")
    path = folder / name
    subprocess.run([sox, "-n", "-r", "16000", "-c", "1", *effects, str(path), "synth", "2", "sine", "440"],
                   check=True, capture_output=True, timeout=60)
    return path
