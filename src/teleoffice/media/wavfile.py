"""Writing 8 kHz 16-bit mono WAV files that are either complete or absent.

A voicemail message must never be half a file.  `WavWriter` writes into a
temporary file next to the final one and `commit()` publishes it in the order
that survives a crash at any point:

1. close the WAV writer, which fills in the RIFF and data chunk sizes;
2. flush and fsync the file, so its data is on disk;
3. `os.replace` it to the final name, which is atomic on POSIX (rename(2)) and on
   Windows within one volume: readers see the old state or the new, never a mix;
4. fsync the directory, so the rename itself is durable.

Until step 3 the final name does not exist; after a crash before it, only a
temporary file (``.NAME.*.part``) is left, which `remove_partials` cleans up at
start-up.  `abort()` (or leaving a ``with`` block without committing) removes
the temporary file.

The writes are small and buffered; only `commit()` waits for the disk, so an
asyncio caller may prefer ``await asyncio.to_thread(writer.commit)``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import wave
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from teleoffice.media.sources import SAMPLE_RATE

__all__ = ["WavWriter", "WavWriterError", "remove_partials"]

_PARTIAL_SUFFIX = ".part"


class WavWriterError(RuntimeError):
    """The writer was used after it was committed or aborted."""


class WavWriter:
    """Writes little-endian int16 mono PCM at 8000 Hz to `path`, atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        folder = self.path.parent
        handle, temp_name = tempfile.mkstemp(
            dir=folder, prefix=f".{self.path.name}.", suffix=_PARTIAL_SUFFIX
        )
        self.temp_path = Path(temp_name)
        # Both stay open across calls until commit() or abort(): no `with` here.
        self._file: BinaryIO | None = os.fdopen(handle, "wb")
        self._wav: wave.Wave_write | None = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._samples = 0
        self.committed = False

    @property
    def duration(self) -> float:
        """Seconds of audio written so far."""
        return self._samples / SAMPLE_RATE

    @property
    def closed(self) -> bool:
        return self._wav is None

    def write(self, pcm: bytes) -> None:
        if self._wav is None:
            raise WavWriterError(f"{self.path}: already committed or aborted")
        if len(pcm) % 2:
            raise ValueError("16-bit PCM must have an even number of octets")
        self._wav.writeframesraw(pcm)
        self._samples += len(pcm) // 2

    def commit(self) -> Path:
        """Publish the file under its final name; returns that name."""
        if self._wav is None or self._file is None:
            raise WavWriterError(f"{self.path}: already committed or aborted")
        wav, file = self._wav, self._file
        self._wav = self._file = None
        try:
            wav.close()  # patches the chunk sizes, flushes; leaves our file open
            os.fsync(file.fileno())
            file.close()
            os.replace(self.temp_path, self.path)
        except BaseException:
            file.close()
            with contextlib.suppress(OSError):
                self.temp_path.unlink()
            raise
        _fsync_directory(self.path.parent)
        self.committed = True
        return self.path

    def abort(self) -> None:
        """Throw the recording away (idempotent; does nothing after commit)."""
        wav, file = self._wav, self._file
        self._wav = self._file = None
        if file is None:
            return
        if wav is not None:
            # Closing only releases it: the header it patches is thrown away anyway.
            with contextlib.suppress(Exception):
                wav.close()
        file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.abort()


def _fsync_directory(folder: Path) -> None:
    # Not every platform can open a directory (Windows cannot); there the rename
    # is as durable as the file system makes it.
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform dependent
        return
    try:
        os.fsync(handle)
    except OSError:  # pragma: no cover - platform dependent
        pass
    finally:
        os.close(handle)


def remove_partials(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files that crashed writers left in `folder`.

    Call it at start-up, before any writer runs; returns how many were removed.
    """
    removed = 0
    for entry in Path(folder).glob(f".*{_PARTIAL_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed += 1
    return removed
