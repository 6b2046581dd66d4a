"""Tests of media.wavfile: a recording is a complete WAV file or no file at all."""

from __future__ import annotations

import gc
import wave
from pathlib import Path

import pytest

from teleoffice.media.wavfile import WavWriter, WavWriterError, remove_partials

ONE_SECOND = bytes(range(256)) * 62 + bytes(128)  # 16000 octets


def read(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        return params, wav.readframes(wav.getnframes())


def test_commit_publishes_a_complete_file(tmp_path: Path) -> None:
    final = tmp_path / "msg0001.wav"
    writer = WavWriter(final)
    assert writer.temp_path.parent == tmp_path
    assert writer.temp_path != final
    writer.write(ONE_SECOND)
    writer.write(ONE_SECOND[:3200])
    assert writer.duration == pytest.approx(1.2)
    assert not final.exists()  # nothing under the final name before commit
    assert writer.commit() == final
    assert read(final) == ((1, 2, 8000), ONE_SECOND + ONE_SECOND[:3200])
    assert list(tmp_path.iterdir()) == [final]  # the temporary file is gone
    assert writer.committed
    with pytest.raises(WavWriterError):
        writer.write(b"\0\0")
    with pytest.raises(WavWriterError):
        writer.commit()


def test_commit_replaces_an_older_file(tmp_path: Path) -> None:
    final = tmp_path / "greeting.wav"
    final.write_bytes(b"old")
    with WavWriter(final) as writer:
        writer.write(ONE_SECOND)
        writer.commit()
    assert read(final)[1] == ONE_SECOND


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = WavWriter(tmp_path / "msg.wav")
    writer.write(ONE_SECOND)
    writer.abort()
    writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_leaving_the_block_without_commit_aborts(tmp_path: Path) -> None:
    def hang_up_while_recording() -> None:
        with WavWriter(tmp_path / "msg.wav") as writer:
            writer.write(ONE_SECOND)
            raise RuntimeError("caller hung up")

    with pytest.raises(RuntimeError, match="hung up"):
        hang_up_while_recording()
    with WavWriter(tmp_path / "msg.wav") as writer:
        writer.write(ONE_SECOND)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the "crash" drops an open file
def test_a_crash_before_commit_leaves_no_final_file(tmp_path: Path) -> None:
    # A crash is a writer that is never committed nor aborted: the process dies.
    final = tmp_path / "msg.wav"
    writer = WavWriter(final)
    writer.write(ONE_SECOND)
    temp = writer.temp_path
    del writer
    gc.collect()
    assert not final.exists()
    assert temp.exists()
    assert temp.name.startswith(".msg.wav.")
    # At the next start, the leftovers are cleaned up; finished files stay.
    (tmp_path / "old.wav").write_bytes(b"RIFF")
    assert remove_partials(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["old.wav"]


def test_empty_recording_is_a_valid_file(tmp_path: Path) -> None:
    final = tmp_path / "empty.wav"
    writer = WavWriter(final)
    assert writer.duration == 0.0
    writer.commit()
    assert read(final) == ((1, 2, 8000), b"")


def test_odd_lengths_are_refused(tmp_path: Path) -> None:
    with WavWriter(tmp_path / "x.wav") as writer, pytest.raises(ValueError, match="even"):
        writer.write(b"\0")
