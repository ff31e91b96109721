"""Expected calibration error (equal-width confidence bins) as an `evaluate.Metric` (loaded by path)."""

import datasets
import evaluate
import numpy as np


class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Weighted mean |accuracy - confidence| over confidence bins, with the bins.", citation="",
            inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64"),
                                        "confidences": datasets.Value("float64")}))

    def _compute(self, predictions, references, confidences, n_bins=15):
        pred, ref, conf = np.asarray(predictions), np.asarray(references), np.asarray(confidences)
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
        bins, ece = [], 0.0
        for b in range(n_bins):
            m = which == b
            if not m.any():
                bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": 0, "accuracy": None,
                             "confidence": None})
                continue
            acc, c = float((pred[m] == ref[m]).mean()), float(conf[m].mean())
            ece += m.mean() * abs(acc - c)
            bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(m.sum()), "accuracy": acc,
                         "confidence": c})
        return {"ece": float(ece), "bins": bins}
