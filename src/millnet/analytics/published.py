"""Published PCA T² detection rates on the (classic) Tennessee Eastman data, for comparison.

Source: L. H. Chiang, E. L. Russell and R. D. Braatz, "Fault detection and diagnosis in
industrial systems", Springer, London, 2001 (the same study as E. L. Russell, L. H. Chiang and
R. D. Braatz, "Fault detection in industrial processes using canonical variate analysis and
dynamic principal component analysis", Chemometrics and Intelligent Laboratory Systems 51(1),
81-93, 2000): the PCA T² column of the table of missed detection rates on the test sets
d01_te..d21_te (960 samples, fault from sample 160, 99 % limits). Detection rate = 1 - missed
detection rate.

Caveats, stated where the numbers are used:
- The values below were transcribed from the commonly reproduced table without access to the
  paper in the session that wrote this file: they are marked unverified until checked
  against the original (``VERIFIED``).
- Those runs come from the original TEP model under Lyman and Georgakis' control; millnet's runs
  come from tep-studio's modified model under Ricker's control, so a fault's figures are
  comparable in kind, not sample for sample. IDV(21)-IDV(28) exist only in the modified model
  and have no published PCA T² figure here (missing, not invented).
"""

from __future__ import annotations

REFERENCE = (
    "Chiang, Russell and Braatz, Fault Detection and Diagnosis in Industrial Systems, "
    "Springer 2001; Russell, Chiang and Braatz, Chemometrics and Intelligent Laboratory "
    "Systems 51 (2000) 81-93: PCA T² missed detection rates, test sets d01-d21"
)
VERIFIED = False

# fault -> missed detection rate of PCA T² (classic d01..d20; d21 is a different fault there)
_MISSED_T2: dict[int, float] = {
    1: 0.008, 2: 0.020, 3: 0.998, 4: 0.956, 5: 0.775, 6: 0.011, 7: 0.085, 8: 0.034,
    9: 0.994, 10: 0.666, 11: 0.794, 12: 0.029, 13: 0.060, 14: 0.158, 15: 0.988,
    16: 0.834, 17: 0.259, 18: 0.113, 19: 0.996, 20: 0.701,
}

PCA_T2_DETECTION_RATE: dict[int, float] = {
    fault: round(1.0 - missed, 3) for fault, missed in _MISSED_T2.items()
}


def published_t2(fault: int) -> float | None:
    """Published PCA T² detection rate of ``fault``, or None where there is none."""
    return PCA_T2_DETECTION_RATE.get(fault)
