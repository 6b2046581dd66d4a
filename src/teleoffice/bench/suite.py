"""Every benchmark of `python -m teleoffice.bench`, in the order they run."""

from __future__ import annotations

from teleoffice.bench.calls import call_rate
from teleoffice.bench.media import media_relay
from teleoffice.bench.memory import memory_per_call
from teleoffice.bench.pdd import post_dial_delay
from teleoffice.bench.presence import presence_fan_out
from teleoffice.bench.register import Benchmark, options_vs_register, registrations_memory
from teleoffice.bench.telecommuter import telecommuter

BENCHMARKS: dict[str, Benchmark] = {
    "call_rate": call_rate,
    "post_dial_delay": post_dial_delay,
    "telecommuter": telecommuter,
    "presence_fan_out": presence_fan_out,
    "media_relay": media_relay,
    "memory_per_call": memory_per_call,
    "options_vs_register": options_vs_register,
    "registrations_memory": registrations_memory,
}
