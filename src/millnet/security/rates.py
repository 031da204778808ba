"""Per-device message-rate anomalies: floods and silence against a learned baseline.

Fed periodically (``observe_rate(device, messages, interval_s)``, e.g. from the ingest metrics
every minute). Each device keeps its last ``rate_baseline`` normal rates; after ``rate_warmup``
of them a rate is judged by its robust z-score against their median and MAD (1.4826 * MAD
estimates a standard deviation without being moved by the outliers it is looking for). The scale
has a floor of a tenth of the median and of one message per interval, so a device that always
sends exactly the same count is not flagged for one message more. Anomalous rates are not
learned; after ``rate_relearn_after`` anomalous observations in a row the device is assumed to
have changed for good (a new firmware, a new poll rate) and its baseline starts again.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass

from millnet.errors import InvalidInput
from millnet.model.security import EventKind, SecurityEvent, Severity
from millnet.security.base import Bounded, Reporter, clip
from millnet.security.settings import SecuritySettings

MAD_SIGMA = 1.4826


@dataclass(slots=True)
class _Baseline:
    rates: deque[float]
    abnormal: int = 0


class RateAnomalyDetector:
    def __init__(self, reporter: Reporter, settings: SecuritySettings) -> None:
        self._reporter = reporter
        self._s = settings
        self._devices: Bounded[_Baseline] = Bounded(settings.max_tracked)
        self._lock = threading.Lock()

    def observe_rate(self, device_key: str, messages: int, interval_s: float, *,
                     tenant_id: int | None = None) -> str | None:
        """Judge one interval's message count; ``"flood"`` or ``"silence"`` when an anomaly
        was raised, else None."""
        if messages < 0 or not interval_s > 0:
            raise InvalidInput("messages must be >= 0 and interval_s > 0", "interval_s")
        rate = messages / interval_s
        with self._lock:
            b = self._devices.touch(device_key, lambda: _Baseline(
                deque(maxlen=self._s.rate_baseline)))
            verdict = self._judge(b.rates, rate, interval_s)
            if verdict is None:
                b.rates.append(rate)
                b.abnormal = 0
                return None
            b.abnormal += 1
            if b.abnormal >= self._s.rate_relearn_after:
                b.rates.clear()
                b.abnormal = 0
            median = statistics.median(b.rates) if b.rates else 0.0
        self._report(device_key, verdict, rate, median, tenant_id)
        return verdict

    def _judge(self, rates: deque[float], rate: float, interval_s: float) -> str | None:
        if len(rates) < self._s.rate_warmup:
            return None
        median = statistics.median(rates)
        mad = statistics.median(abs(r - median) for r in rates)
        scale = max(MAD_SIGMA * mad, 0.1 * median, 1.0 / interval_s)
        z = (rate - median) / scale
        if z > self._s.rate_threshold:
            return "flood"
        if rate == 0 and median > self._s.rate_min_silence:
            return "silence"
        return None

    def _report(self, device_key: str, verdict: str, rate: float, median: float,
                tenant_id: int | None) -> None:
        device = clip(device_key)
        if verdict == "flood":
            summary = f"device {clip(device_key, 200)} sends {rate:.3g} msg/s, " \
                      f"usually {median:.3g}"
        else:
            summary = f"device {clip(device_key, 200)} went silent, usually {median:.3g} msg/s"
        self._reporter.report(SecurityEvent(
            EventKind.DEVICE_RATE_ANOMALY, Severity.MEDIUM, summary, source=device,
            target=verdict, detail={"rate": round(rate, 6), "baseline": round(median, 6),
                                    "direction": verdict}), tenant_id)


class RateFeeder:
    """Turns message counts per interval into :meth:`RateAnomalyDetector.observe_rate` calls.

    A device counted before and absent from an interval sent nothing: it is observed at zero,
    which is how a silence is seen at all. The devices remembered are bounded like the
    detector's (``max_tracked``)."""

    def __init__(self, detector: RateAnomalyDetector, limit: int) -> None:
        self._detector = detector
        self._known: Bounded[tuple[int | None]] = Bounded(limit)  # device -> (tenant,)

    def feed(self, counts: dict[str, int], interval_s: float, *,
             tenant_id: int | None = None) -> dict[str, str]:
        """One interval's counts by device key; the anomalies raised, by device."""
        observed = dict(counts)
        for device, (tenant,) in list(self._known.items()):
            if tenant == tenant_id:
                observed.setdefault(device, 0)
        raised: dict[str, str] = {}
        for device, messages in observed.items():
            self._known.touch(device, lambda: (tenant_id,))
            verdict = self._detector.observe_rate(device, messages, interval_s,
                                                  tenant_id=tenant_id)
            if verdict is not None:
                raised[device] = verdict
        return raised
