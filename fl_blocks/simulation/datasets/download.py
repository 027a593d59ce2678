"""Finds, decompresses or downloads an LZMA-compressed data file in a cache directory.

Like TFF's ``download.get_compressed_file``, but TF-free, with a default cache of
``~/.cache/fl_blocks``, a local ``.lzma`` copy used when present, and every file
written to a temporary name first and renamed when complete, so an interrupted
run never leaves a half-written file behind.

>>> import lzma, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "tiny.txt.lzma").write_bytes(lzma.compress(b"hello"))
>>> pathlib.Path(get_compressed_file("https://example.invalid/tiny.txt.lzma", folder)).read_bytes()
b'hello'
"""

from __future__ import annotations

import lzma
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Iterator, Optional, Union

__all__ = ["get_compressed_file", "decompress_file", "default_cache_dir"]

_CHUNK = 2**20


def default_cache_dir() -> pathlib.Path:
    """``~/.cache/fl_blocks``."""
    return pathlib.Path.home() / ".cache" / "fl_blocks"


def _decompress_atomically(chunks: Iterator[bytes], target: pathlib.Path, source: str) -> None:
    decompressor = lzma.LZMADecompressor()
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(decompressor.decompress(chunk))
        if not decompressor.eof:
            raise ValueError(f"{source} is truncated: the LZMA stream ends early; delete it and download it again")
        os.replace(temp, target)
    except lzma.LZMAError as error:
        os.unlink(temp)
        raise ValueError(f"{source} is not a valid LZMA file ({error}); delete it and download it again") from None
    except BaseException:
        os.unlink(temp)
        raise


def _read_chunks(stream: IO[bytes], total: Optional[int], label: str) -> Iterator[bytes]:
    done = 0
    while chunk := stream.read(_CHUNK):
        done += len(chunk)
        shown = f"{done / 2**20:.0f} MiB" + (f" of {total / 2**20:.0f} MiB" if total else "")
        print(f"\rDownloading {label}: {shown}", end="", file=sys.stderr, flush=True)
        yield chunk
    print(file=sys.stderr)


def decompress_file(compressed: pathlib.Path, target: pathlib.Path) -> None:
    """Decompresses the local ``.lzma`` file `compressed` into `target`, atomically (no partial `target`)."""
    with compressed.open("rb") as stream:
        _decompress_atomically(iter(lambda: stream.read(_CHUNK), b""), target, str(compressed))


def get_compressed_file(origin: str, cache_dir: Optional[Union[str, os.PathLike[str]]] = None) -> str:
    """Returns the path of the decompressed file for the ``.lzma`` URL `origin`.

    Looks in `cache_dir` (default `default_cache_dir()`) for the decompressed file,
    then for the ``.lzma`` file (decompressed once), else downloads and decompresses
    on the fly, showing progress on stderr. Raises `OSError` naming the URL and the
    cache when offline, `ValueError` for a corrupt or truncated archive.
    """
    name = pathlib.PurePosixPath(urllib.parse.urlparse(origin).path).name
    if not name.endswith(".lzma"):
        raise ValueError(f"only .lzma files are supported, got {origin!r}")
    folder = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    compressed = folder / name
    target = folder / name[: -len(".lzma")]
    if target.exists():
        return str(target)
    if compressed.exists():
        decompress_file(compressed, target)
        return str(target)
    try:
        with urllib.request.urlopen(origin, timeout=60) as response:
            length = response.headers.get("content-length")
            chunks = _read_chunks(response, int(length) if length else None, name)
            _decompress_atomically(chunks, target, origin)
    except (urllib.error.URLError, OSError) as error:
        raise OSError(
            f"could not download {origin} ({getattr(error, 'reason', error)}). If this machine is offline, "
            f"copy {name} (or its decompressed {target.name}) into {folder} and retry."
        ) from error
    return str(target)
