"""Prometheus metrics read from the services' own counters at scrape time.

A custom collector reads plain counters when Prometheus scrapes, so the hot path
only increments integers and never touches prometheus_client objects.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from teleoffice.server.runner import SipRunner


class SipCollector(Collector):
    def __init__(self, runner: SipRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        service = self.runner.service
        counters = service.counters
        transport = self.runner.transport
        yield CounterMetricFamily(
            "teleoffice_sip_messages_received", "SIP messages received", value=counters.received
        )
        yield CounterMetricFamily(
            "teleoffice_sip_parse_errors",
            "SIP messages that could not be parsed",
            value=counters.parse_errors,
        )
        yield CounterMetricFamily(
            "teleoffice_sip_dropped",
            "SIP messages dropped without an answer",
            value=counters.dropped,
        )
        yield CounterMetricFamily(
            "teleoffice_sip_auth_failures",
            "Failed digest authentications",
            value=counters.auth_failures,
        )
        guard = service.guard
        yield CounterMetricFamily(
            "teleoffice_sip_auth_guard_failures",
            "Failed digest authentications counted against source addresses and accounts",
            value=guard.counters.failures,
        )
        yield CounterMetricFamily(
            "teleoffice_sip_blocks",
            "Source addresses blocked for password guessing",
            value=guard.counters.blocks,
        )
        yield CounterMetricFamily(
            "teleoffice_sip_accounts_attacked",
            "Times an account went under attack (too many failures from any address)",
            value=guard.counters.account_alarms,
        )
        yield GaugeMetricFamily(
            "teleoffice_sip_blocked_sources",
            "Source addresses blocked right now",
            value=guard.blocked_count(self.runner.clock()),
        )
        yield CounterMetricFamily(
            "teleoffice_sip_blocked_dropped",
            "SIP requests from blocked addresses dropped without an answer",
            value=counters.blocked_dropped,
        )
        overload = service.overload
        shed = CounterMetricFamily(
            "teleoffice_sip_overload_shed",
            "New requests refused with 503 under overload, by method",
            labels=["method"],
        )
        for method, count in sorted(overload.counters.shed.items()):
            shed.add_metric([method], count)
        yield shed
        yield CounterMetricFamily(
            "teleoffice_sip_overload_episodes",
            "Times the server started shedding new work",
            value=overload.counters.episodes,
        )
        yield GaugeMetricFamily(
            "teleoffice_sip_overloaded",
            "1 while new INVITEs and REGISTERs are refused with 503",
            value=1 if overload.overloaded else 0,
        )
        yield GaugeMetricFamily(
            "teleoffice_sip_loop_lag_seconds",
            "Event-loop lag, exponentially weighted moving average",
            value=overload.lag,
        )
        yield GaugeMetricFamily(
            "teleoffice_sip_loop_busy_ratio",
            "Fraction of wall time spent on the CPU, exponentially weighted moving average",
            value=overload.busy,
        )
        responses = CounterMetricFamily(
            "teleoffice_sip_responses_sent", "SIP responses sent by status code", labels=["status"]
        )
        for status, count in sorted(counters.responses_sent.items()):
            responses.add_metric([str(status)], count)
        yield responses
        yield GaugeMetricFamily(
            "teleoffice_sip_transactions",
            "SIP transactions in progress",
            value=service.transactions.transaction_count(),
        )
        yield GaugeMetricFamily(
            "teleoffice_registrations", "Registered contacts", value=service.registrar.count()
        )
        yield GaugeMetricFamily(
            "teleoffice_sip_tcp_connections",
            "Open SIP TCP connections",
            value=transport.tcp_connection_count,
        )
        yield CounterMetricFamily(
            "teleoffice_sip_framing_errors",
            "TCP connections closed for bad framing",
            value=transport.framing_errors,
        )


def build_registry(runner: SipRunner) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SipCollector(runner))
    return registry
